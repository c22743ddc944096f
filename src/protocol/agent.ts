/** Agent routes (DESIGN §6): the route table, request and response shapes. */
import { z } from "zod";
import { defineRoute } from "./route.ts";

export const AgentHealth = z.object({
  status: z.literal("ok"),
  role: z.literal("agent"),
  version: z.string(),
  release: z.string().nullable(),
  pid: z.number().int(),
});
export type AgentHealth = z.infer<typeof AgentHealth>;

export const ProjectName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "lowercase letters, digits, - and _, at most 63");

export const Deployment = z.object({
  project: ProjectName,
  deployed_at: z.string(),
});
export type Deployment = z.infer<typeof Deployment>;

export const AgentStatus = AgentHealth.extend({
  uptime_s: z.number(),
  deployments: z.array(Deployment),
});
export type AgentStatus = z.infer<typeof AgentStatus>;

export const DeployRequest = z.object({
  project: ProjectName,
  compose: z.string().min(1).max(1024 * 1024),
});
export const TeardownRequest = z.object({ project: ProjectName });

/** What /deploy and /teardown answer: compose's own output. */
export const ComposeResult = z.object({ project: ProjectName, action: z.enum(["up", "down"]), stdout: z.string(), stderr: z.string() });

/** The agent's routes, sorted by key; daemons/agent/routes.ts serves exactly these. */
export const agentApi = {
  health: defineRoute({ method: "GET", path: "/health", response: AgentHealth }),
  status: defineRoute({ method: "GET", path: "/status", response: AgentStatus }),
  deploy: defineRoute({ method: "POST", path: "/deploy", body: DeployRequest, response: ComposeResult }),
  teardown: defineRoute({ method: "POST", path: "/teardown", body: TeardownRequest, response: ComposeResult }),
} as const;

/** What a daemon's listener serves after re-reading its bundle dir (daemons/tls-listener.ts). */
export const TlsServed = z.object({ serial: z.string(), crl_until: z.string().nullable() }).strict();
export type TlsServed = z.infer<typeof TlsServed>;

/**
 * The agent's local socket (agent.sock, 0600): /health, and /tls/reload, by
 * which the updater has the agent serve the certificates and CRL it just put
 * in the agent's bundle dir, without the agent restarting.
 */
export const agentLocalApi = {
  health: agentApi.health,
  tlsReload: defineRoute({ method: "POST", path: "/tls/reload", response: TlsServed }),
} as const;
