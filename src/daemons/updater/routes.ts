/**
 * The updater's route tables (mTLS and local socket). One operation at a
 * time: a second gets 423, while /health and /releases keep answering.
 */
import type { UpdaterHealth } from "../../protocol/updater.ts";
import type { BuildInfo } from "../../lib/build-info.ts";
import { DecnetError } from "../../lib/errors.ts";
import { localHealth } from "../../lib/control-socket.ts";
import { route, type Routes } from "../server.ts";
import type { AgentOps } from "./ops.ts";

/** The operation lock: one update, rollback or recovery at a time. */
export class OpLock {
  busy: string | null = null;
  async run<T>(name: string, fn: () => Promise<T>): Promise<T> {
    if (this.busy) throw new DecnetError("busy", `another operation is in flight (${this.busy}); try again when it ends`);
    this.busy = name;
    try {
      return await fn();
    } finally {
      this.busy = null;
    }
  }
}

export interface UpdaterDeps {
  info: BuildInfo;
  ops: AgentOps;
  lock: OpLock;
  agentSock: string;
}

async function health(d: UpdaterDeps): Promise<UpdaterHealth> {
  const h = await localHealth(d.agentSock, 500).catch(() => null);
  const current = d.ops.slots.current();
  return {
    status: "ok",
    role: "updater",
    version: d.info.version,
    release: d.info.release,
    pid: process.pid,
    busy: d.lock.busy,
    agent: { release: h?.release ?? null, pid: h?.pid ?? null, healthy: h !== null && h.release === current },
  };
}

export function updaterRoutes(d: UpdaterDeps): Routes {
  return {
    "GET /health": route({ handle: () => health(d) }),
    "GET /releases": route({ handle: () => d.ops.slots.list() }),
    "POST /rollback": route({ handle: () => d.lock.run("rollback", () => d.ops.rollback()) }),
    "POST /update": route({
      handle: ({ req, server }) =>
        d.lock.run("update", () => {
          // Install, restart and probes may take a while with nothing on the wire.
          server?.timeout(req, 0);
          const len = req.headers.get("content-length");
          return d.ops.update(req.body, len === null ? null : Number(len), req.signal);
        }),
    }),
  };
}

export function updaterLocalRoutes(d: UpdaterDeps): Routes {
  return { "GET /health": route({ handle: () => health(d) }) };
}
