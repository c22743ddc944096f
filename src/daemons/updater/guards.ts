/**
 * The updater's port guards (lib/port-guard.ts): one on its own port, kept
 * across its re-exec, and one on the agent's port, so that no other local
 * user can take either while a decnet daemon restarts. A re-executed image
 * takes over the guards its predecessor left it (DECNET_PORT_GUARD_FDS):
 * it holds its own first, then closes those.
 */
import { readlinkSync } from "node:fs";
import type { ResolvedUpdaterConfig } from "../../lib/config.ts";
import { env } from "../../lib/env.ts";
import type { Logger } from "../../lib/log.ts";
import { holdPort, releasePort } from "../../lib/port-guard.ts";

/** The env variable that hands guard fds to the re-executed image. */
export const GUARD_FDS_ENV = "DECNET_PORT_GUARD_FDS";

export interface Guards {
  /** The agent's port is held: no other user's socket can conflict with the agent's bind. */
  agent: boolean;
  /** Fds to keep open across the re-exec, and to name in GUARD_FDS_ENV. */
  inherit: number[];
}

export function holdGuards(cfg: Pick<ResolvedUpdaterConfig, "host" | "port" | "agentPort">, log: Logger): Guards {
  const own = holdPort(cfg.host, cfg.port);
  const agent = holdPort(cfg.host, cfg.agentPort);
  for (const [what, port, r] of [["its own", cfg.port, own], ["the agent's", cfg.agentPort, agent]] as const) {
    if (!r.ok) log.warn(`cannot guard ${what} port ${cfg.host}:${port} against other local users (${r.why})`);
  }
  // The predecessor's guards held the ports until now; ours do from here on.
  for (const fd of (env(GUARD_FDS_ENV) ?? "").split(",").map(Number)) {
    if (Number.isInteger(fd) && fd > 2 && isSocket(fd)) releasePort(fd);
  }
  return { agent: agent.ok, inherit: own.ok ? [own.fd] : [] };
}

function isSocket(fd: number): boolean {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`).startsWith("socket:");
  } catch {
    return false;
  }
}
