/**
 * The updater's route tables (mTLS and local socket). One operation at a
 * time: a second gets 423, while /health and /releases keep answering.
 */
import type { UpdaterHealth } from "../../protocol/updater.ts";
import type { BuildInfo } from "../../lib/build-info.ts";
import { DecnetError } from "../../lib/errors.ts";
import { localHealth } from "../../lib/control-socket.ts";
import { json, route, type Routes } from "../server.ts";
import { z } from "zod";
import type { AgentOps } from "./ops.ts";
import type { SelfOps } from "./self.ts";
import { stageDelta } from "./stage-delta.ts";
import { stageUpload } from "./stage.ts";

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
  maxUploadBytes: number;
  ops: AgentOps;
  self: SelfOps;
  /** Stops the servers and re-executes; called after the 202 has gone out. */
  reexec: () => Promise<never>;
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

function stageOptions(d: UpdaterDeps, req: Request) {
  const len = req.headers.get("content-length");
  return { maxBytes: d.maxUploadBytes, contentLength: len === null ? null : Number(len), signal: req.signal };
}

export function updaterRoutes(d: UpdaterDeps): Routes {
  return {
    "GET /blocks": route({
      query: z.object({
        release: z.string().regex(/^[0-9a-f]{64}$/, "a release id"),
        /** The agent's releases (default) or the updater's own. */
        slot: z.enum(["agent", "updater"]).default("agent"),
      }),
      handle: async ({ query }) => {
        const b = await (query.slot === "updater" ? d.self.slots : d.ops.slots).blocks(query.release);
        if (!b) throw new DecnetError("not_found", `release ${query.release.slice(0, 12)} is not kept here`);
        return b;
      },
    }),
    "GET /health": route({ handle: () => health(d) }),
    "GET /releases": route({ handle: () => d.ops.slots.list() }),
    "POST /rollback": route({ handle: () => d.lock.run("rollback", () => d.ops.rollback()) }),
    "POST /update": route({
      query: z.object({ delta: z.string().regex(/^[0-9a-f]{64}$/, "a base release id").optional() }),
      handle: ({ req, server, query }) =>
        d.lock.run("update", () => {
          // Install, restart and probes may take a while with nothing on the wire.
          server?.timeout(req, 0);
          const o = stageOptions(d, req);
          const paths = d.ops.slots.paths;
          return d.ops.update(() => (query.delta ? stageDelta(d.ops.slots, paths, query.delta, req.body, o) : stageUpload(paths, req.body, o)));
        }),
    }),
    "POST /update-self": route({
      query: z.object({
        confirm_self: z.literal("true", { message: "add ?confirm_self=true: a self-update has no automatic rollback" }),
        delta: z.string().regex(/^[0-9a-f]{64}$/, "a base release id").optional(),
      }),
      handle: async ({ req, server, query }) => {
        server?.timeout(req, 0);
        const o = stageOptions(d, req);
        const paths = d.self.slots.paths;
        const stage = () => (query.delta ? stageDelta(d.self.slots, paths, query.delta, req.body, o) : stageUpload(paths, req.body, o));
        const r = await d.lock.run("update-self", () => d.self.install(stage));
        if (!r.reexec) return r.response;
        // Hold every other operation off until the new image serves; answer
        // first, then replace ourselves once the answer is on the wire.
        d.lock.busy = "update-self (re-executing)";
        setTimeout(() => void d.reexec(), 200);
        return json(r.response, 202);
      },
    }),
  };
}

export function updaterLocalRoutes(d: UpdaterDeps): Routes {
  return { "GET /health": route({ handle: () => health(d) }) };
}
