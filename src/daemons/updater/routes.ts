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
import { stageDelta2 } from "./stage-delta2.ts";
import { decodeIndexQuery, encodeCompactIndex, IndexFormatError, type IndexQuery } from "../../protocol/block-index.ts";
import { stageUpload } from "./stage.ts";
import type { StageOptions, Staged } from "./staging.ts";
import { type Counters, outcomeOf } from "./counters.ts";
import type { UpdaterLogs } from "./logs.ts";
import { metricsResponse } from "./metrics.ts";
import type { Vitals } from "./vitals.ts";
import { uptimeSeconds } from "../../lib/procfs.ts";

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
  /** /metrics: the counters, what is measured at each scrape, and when this process started. */
  counters: Counters;
  vitals: Vitals;
  logs: UpdaterLogs;
  startedAt: number;
}

/**
 * One operation under the lock, and a line in the updater's log when it
 * fails or is refused (a warning: journald shows it at that priority), so
 * the worker's own log tells every push that did not land.
 */
function operation<T>(d: UpdaterDeps, name: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  return d.lock.run(name, fn).then(
    (r) => {
      count(d, name, r, null, t0);
      return r;
    },
    (e: unknown) => {
      const x = e as { code?: string; message?: string };
      if (x?.code !== "busy") {
        d.log.warn(`${name} failed: ${x?.code ?? "error"}: ${x?.message ?? String(e)}`);
        count(d, name, null, x, t0);
      }
      throw e;
    },
  );
}

/** The operation in /metrics' counters: an update by outcome (and a probe's rollback), or a rollback done. */
function count(d: UpdaterDeps, name: string, r: unknown, e: { code?: string; detail?: unknown } | null, t0: number): void {
  const seconds = (performance.now() - t0) / 1000;
  const result = (r as { status?: string; response?: { status?: string } } | null);
  if (name === "update" || name === "update-self") {
    const rolledBack = e?.code === "rolled_back" && (e.detail as { rolled_back?: boolean } | undefined)?.rolled_back === true;
    d.counters.update(name === "update" ? "agent" : "updater", outcomeOf(result?.response ?? result, e), seconds, rolledBack);
  } else if (name === "rollback" && !e) d.counters.operatorRollback();
}

async function health(d: UpdaterDeps): Promise<UpdaterHealth> {
  const h = await d.agentHealth(timeouts.healthAgent());
  const current = d.ops.set.current();
  return {
    status: "ok",
    role: "updater",
    version: d.info.version,
    target: d.info.target,
    release: d.info.release,
    pid: process.pid,
    busy: d.lock.busy,
    agent: { release: h?.release ?? null, pid: h?.pid ?? null, healthy: h !== null && h.release === current, uptime_s: h ? uptimeSeconds(h.pid) : null },
    leaks: { deleted_fds: deletedFds(d.ops.set.paths.root).length },
    self_update: d.self.last(),
    trust: trustSummary(d.trust.get()),
    certificates: d.vitals.certificates(),
    disk: d.vitals.disk(),
    current,
    delta_formats: [1, 2],
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

/** The request's body, its bytes counted for /metrics as they arrive. */
function countedBody(req: Request, c: Counters): ReadableStream<Uint8Array> | null {
  return req.body?.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({ transform(chunk, ctl) { c.received(chunk.byteLength); ctl.enqueue(chunk); } })) ?? null;
}

/** The upload in `req` staged into `set`: whole, or as a delta (format 1, or 2 when the query says) against `delta`. */
async function stagerFor(set: ReleaseSet, req: Request, maxBytes: number, q: { delta?: string; format?: "1" | "2" }, c: Counters, target: string): Promise<() => Promise<Staged>> {
  const len = req.headers.get("content-length");
  const o: StageOptions = { maxBytes, contentLength: len === null ? null : Number(len), signal: req.signal, target };
  const delta = q.delta;
  if (!delta) return () => stageUpload(set.paths, countedBody(req, c), o);
  const stager = q.format === "2" ? stageDelta2 : stageDelta;
  return async () => stager(set.paths, set.spare, await set.base(delta), delta, countedBody(req, c), o);
}

/** POST /blocks: the compact index of a kept release, only the groups the master's query does not already match. */
async function compactBlocks(set: ReleaseSet, release: string, query: string): Promise<{ index: string }> {
  let q: IndexQuery;
  try {
    q = decodeIndexQuery(new Uint8Array(Buffer.from(query, "base64")));
  } catch (e) {
    if (e instanceof IndexFormatError) throw new DecnetError("bad_request", `invalid index query: ${e.message}`);
    throw e;
  }
  const b = await set.blocks(release);
  if (!b) throw new DecnetError("not_found", `release ${release.slice(0, 12)} is not kept here`);
  const files = Object.fromEntries(Object.entries(b.files).map(([p, f]) => [p, { size: f.size, digests: new Uint8Array(Buffer.from(f.hashes, "base64")) }]));
  return { index: Buffer.from(encodeCompactIndex({ release, width: 32, files }, q)).toString("base64") };
}

/** What /metrics reads at each scrape. */
async function metrics(d: UpdaterDeps): Promise<Response> {
  const h = await d.agentHealth(timeouts.healthAgent());
  const agent = { healthy: h !== null && h.release === d.ops.set.current(), uptime_s: h ? uptimeSeconds(h.pid) : null };
  return metricsResponse({ counters: d.counters, vitals: d.vitals, agentSet: d.ops.set, info: d.info, busy: d.lock.busy, agent, logStreams: d.logs.followers, startedAt: d.startedAt });
}

export function updaterRoutes(d: UpdaterDeps): Routes {
  return [
    route(updaterApi.blocks, async ({ query }) => {
      const b = await (query.slot === "updater" ? d.self.set : d.ops.set).blocks(query.release);
      if (!b) throw new DecnetError("not_found", `release ${query.release.slice(0, 12)} is not kept here`);
      return b;
    }),
    route(updaterApi.health, () => health(d)),
    route(updaterApi.logs, ({ query, req, server }) => {
      // A follow stream may sit quiet for long: no idle timeout; it ends when the client goes.
      if (query.follow === "1") server?.timeout(req, 0);
      return d.logs.answer(query, req.signal);
    }),
    route(updaterApi.metrics, () => metrics(d)),
    route(updaterApi.releases, () => d.ops.set.list()),
    route(updaterApi.blocksCompact, ({ query, body }) => compactBlocks(query.slot === "updater" ? d.self.set : d.ops.set, query.release, body.query)),
    route(updaterApi.rollback, () => operation(d, "rollback", () => d.ops.rollback())),
    // Under the lock: a trust document never changes under an install that checks against it.
    route(updaterApi.trust, ({ req }) => operation(d, "trust", async () => d.trust.offer(await readBody(req, TRUST_MAX_BYTES, "trust document")))),
    route(updaterApi.update, ({ req, server, query }) =>
      operation(d, "update", async () => {
        // Install, restart and probes may take a while with nothing on the wire.
        server?.timeout(req, 0);
        return d.ops.update(await stagerFor(d.ops.set, req, d.maxUploadBytes, query, d.counters, d.info.target), { allowDowngrade: query.allow_downgrade === "true" });
      }),
    ),
    route(updaterApi.updateSelf, async ({ req, server, query }) => {
      server?.timeout(req, 0);
      const r = await operation(d, "update-self", async () => d.self.install(await stagerFor(d.self.set, req, d.maxUploadBytes, query, d.counters, d.info.target), { allowDowngrade: query.allow_downgrade === "true" }));
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
