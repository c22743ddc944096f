/** The agent's route tables: mTLS (health, status, deploy, teardown) and the local socket. */
import { DeployRequest, TeardownRequest, type AgentHealth, type AgentStatus } from "../../protocol/agent.ts";
import type { BuildInfo } from "../../lib/build-info.ts";
import { route, type Routes } from "../server.ts";
import type { ComposeRunner } from "./compose.ts";

export interface AgentDeps {
  info: BuildInfo;
  pid: number;
  startedAt: number;
  now: () => number;
  compose: ComposeRunner;
}

function health(d: AgentDeps): AgentHealth {
  return { status: "ok", role: "agent", version: d.info.version, release: d.info.release, pid: d.pid };
}

export function agentRoutes(d: AgentDeps): Routes {
  return {
    "GET /health": route({ handle: () => health(d) }),
    "GET /status": route({
      handle: (): AgentStatus => ({ ...health(d), uptime_s: Math.round((d.now() - d.startedAt) / 1000), deployments: d.compose.list() }),
    }),
    "POST /deploy": route({
      body: DeployRequest,
      handle: async ({ body }) => ({ project: body.project, action: "up", ...(await d.compose.up(body.project, body.compose)) }),
    }),
    "POST /teardown": route({
      body: TeardownRequest,
      handle: async ({ body }) => ({ project: body.project, action: "down", ...(await d.compose.down(body.project)) }),
    }),
  };
}

export function agentLocalRoutes(d: AgentDeps): Routes {
  return { "GET /health": route({ handle: () => health(d) }) };
}
