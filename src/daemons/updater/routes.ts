/**
 * The updater's route tables (mTLS and local socket), served from the
 * protocol's `updaterApi`. One operation at a time: a second gets 423, while
 * /health and /releases keep answering.
 */
import { type UpdaterHealth, updaterApi } from "../../protocol/updater.ts";
import type { BuildInfo } from "../../lib/build-info.ts";
import type { LocalHealth } from "../../lib/control-socket.ts";
import { DecnetError } from "../../lib/errors.ts";
import { deletedFds } from "../../lib/fd-audit.ts";
import type { Logger } from "../../lib/log.ts";
import { TRUST_MAX_BYTES, trustSummary } from "../../protocol/trust.ts";
import type { TrustStore } from "./trust-store.ts";
import { timeouts } from "../../lib/timeouts.ts";
import { json, route, type Routes } from "../server.ts";
import type { AgentOps } from "./ops.ts";
import type { ReleaseSet } from "./release-set.ts";
import type { SelfOps } from "./self.ts";
import { stageDelta } from "./stage-delta.ts";
import { stageUpload } from "./stage.ts";
import type { StageOptions, Staged } from "./staging.ts";

/**
 * The operation lock: one update, rollback or recovery at a time. `after`
 * runs at the end of each operation, however it ended (the fd audit).
 */
export class OpLock {
  private name: string | null = null;

  constructor(private after: (op: string) => void = () => {}) {}

  get busy(): string | null {
    return this.name;
  }

  async run<T>(name: string, fn: () => Promise<T>): Promise<T> {
    this.take(name);
    try {
      return await fn();
    } finally {
      this.name = null;
      this.after(name);
    }
  }

  /** Takes the lock for good: the process is about to be replaced (a self-update's re-exec). */
  hold(name: string): void {
    this.take(name);
  }

  private take(name: string): void {
    if (this.name) throw new DecnetError("busy", `another operation is in flight (${this.name}); try again when it ends`);
    this.name = name;
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
  /** The agent's local /health, or null when it does not answer. */
  agentHealth: (timeoutMs: number) => Promise<LocalHealth | null>;
  log: Logger;
  trust: TrustStore;
}

/**
 * One operation under the lock, and a line in the updater's log when it
 * fails or is refused (a warning: journald shows it at that priority), so
 * the worker's own log tells every push that did not land.
 */
function operation<T>(d: UpdaterDeps, name: string, fn: () => Promise<T>): Promise<T> {
  return d.lock.run(name, fn).catch((e: unknown) => {
    const x = e as { code?: string; message?: string };
    if (x?.code !== "busy") d.log.warn(`${name} failed: ${x?.code ?? "error"}: ${x?.message ?? String(e)}`);
    throw e;
  });
}

async function health(d: UpdaterDeps): Promise<UpdaterHealth> {
  const h = await d.agentHealth(timeouts.healthAgent());
  const current = d.ops.set.current();
  return {
    status: "ok",
    role: "updater",
    version: d.info.version,
    release: d.info.release,
    pid: process.pid,
    busy: d.lock.busy,
    agent: { release: h?.release ?? null, pid: h?.pid ?? null, healthy: h !== null && h.release === current },
    leaks: { deleted_fds: deletedFds(d.ops.set.paths.root).length },
    self_update: d.self.last(),
    trust: trustSummary(d.trust.get()),
  };
}

/** A small body read whole, refused past `max` bytes (counted, not declared). */
async function readBody(req: Request, max: number, what: string): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (const c of req.body ?? []) {
    n += c.byteLength;
    if (n > max) throw new DecnetError("too_large", `the ${what} is larger than ${max} bytes`);
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

/** The upload in `req` staged into `set`: whole, or as a delta against `delta`. */
async function stagerFor(set: ReleaseSet, req: Request, maxBytes: number, delta: string | undefined): Promise<() => Promise<Staged>> {
  const len = req.headers.get("content-length");
  const o: StageOptions = { maxBytes, contentLength: len === null ? null : Number(len), signal: req.signal };
  if (!delta) return () => stageUpload(set.paths, req.body, o);
  return async () => stageDelta(set.paths, set.spare, await set.base(delta), delta, req.body, o);
}

export function updaterRoutes(d: UpdaterDeps): Routes {
  return [
    route(updaterApi.blocks, async ({ query }) => {
      const b = await (query.slot === "updater" ? d.self.set : d.ops.set).blocks(query.release);
      if (!b) throw new DecnetError("not_found", `release ${query.release.slice(0, 12)} is not kept here`);
      return b;
    }),
    route(updaterApi.health, () => health(d)),
    route(updaterApi.releases, () => d.ops.set.list()),
    route(updaterApi.rollback, () => operation(d, "rollback", () => d.ops.rollback())),
    // Under the lock: a trust document never changes under an install that checks against it.
    route(updaterApi.trust, ({ req }) => operation(d, "trust", async () => d.trust.offer(await readBody(req, TRUST_MAX_BYTES, "trust document")))),
    route(updaterApi.update, ({ req, server, query }) =>
      operation(d, "update", async () => {
        // Install, restart and probes may take a while with nothing on the wire.
        server?.timeout(req, 0);
        return d.ops.update(await stagerFor(d.ops.set, req, d.maxUploadBytes, query.delta), { allowDowngrade: query.allow_downgrade === "true" });
      }),
    ),
    route(updaterApi.updateSelf, async ({ req, server, query }) => {
      server?.timeout(req, 0);
      const r = await operation(d, "update-self", async () => d.self.install(await stagerFor(d.self.set, req, d.maxUploadBytes, query.delta), { allowDowngrade: query.allow_downgrade === "true" }));
      if (!r.reexec) return r.response;
      // Hold every other operation off until the new image serves; answer
      // first, then replace ourselves once the answer is on the wire.
      d.lock.hold("update-self (re-executing)");
      setTimeout(() => void d.reexec(), timeouts.reexecDelay());
      return json(r.response, 202);
    }),
  ];
}

export function updaterLocalRoutes(d: UpdaterDeps): Routes {
  return [route(updaterApi.health, () => health(d))];
}
