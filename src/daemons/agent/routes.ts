/** The agent's route tables: mTLS (health, status, deploy, teardown) and the local socket (health, TLS reload). */
import { agentApi, type AgentHealth, agentLocalApi, type TlsServed } from "../../protocol/agent.ts";
import type { BuildInfo } from "../../lib/build-info.ts";
import { route, type Routes } from "../server.ts";
import type { ComposeRunner } from "./compose.ts";

export interface AgentDeps {
  info: BuildInfo;
  pid: number;
  startedAt: number;
  now: () => number;
  compose: ComposeRunner;
  /** Serve the agent bundle dir as it is now (new certificates, a new CRL) without restarting. */
  reloadTls?: () => Promise<TlsServed>;
}

function health(d: AgentDeps): AgentHealth {
  return { status: "ok", role: "agent", version: d.info.version, release: d.info.release, pid: d.pid };
}

export function agentRoutes(d: AgentDeps): Routes {
  return [
    route(agentApi.health, () => health(d)),
    route(agentApi.status, () => ({ ...health(d), uptime_s: Math.round((d.now() - d.startedAt) / 1000), deployments: d.compose.list() })),
    route(agentApi.deploy, async ({ body }) => ({ project: body.project, action: "up" as const, ...(await d.compose.up(body.project, body.compose)) })),
    route(agentApi.teardown, async ({ body }) => ({ project: body.project, action: "down" as const, ...(await d.compose.down(body.project)) })),
  ];
}

export function agentLocalRoutes(d: AgentDeps): Routes {
  const routes: Routes = [route(agentLocalApi.health, () => health(d))];
  const reload = d.reloadTls;
  if (reload) routes.push(route(agentLocalApi.tlsReload, () => reload()));
  return routes;
}
