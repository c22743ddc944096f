/** Agent routes (DESIGN §6): request and response shapes. */
import { z } from "zod";

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
