/** One typed function per updater route the master uses, over the protocol's `updaterApi`. */
import { open } from "node:fs/promises";
import { type Slot, type UpdaterHealth, updaterApi } from "../protocol/updater.ts";
import { RemoteError } from "../lib/errors.ts";
import { timeouts } from "../lib/timeouts.ts";
import { aborted, call, type Endpoint, openText } from "./http.ts";

export type UpdaterEndpoint = Omit<Endpoint, "role">;
const ep = (e: UpdaterEndpoint): Endpoint => ({ ...e, role: "updater" });

export const updaterHealth = (e: UpdaterEndpoint, signal?: AbortSignal) => call(ep(e), updaterApi.health, { timeoutMs: timeouts.request(), signal });
/** /health within `timeoutMs` (`swarm status`: a dead host costs one short timeout). */
export const updaterHealthWithin = (e: UpdaterEndpoint, timeoutMs: number) => call(ep(e), updaterApi.health, { timeoutMs });
/** GET /logs as a byte stream; with `follow` it goes on until `signal` or the updater ends it. */
export const openLogs = (e: UpdaterEndpoint, q: { source: "agent" | "updater"; lines: number; follow: boolean }, signal?: AbortSignal) =>
  openText(ep(e), updaterApi.logs, { query: { source: q.source, lines: String(q.lines), follow: q.follow ? "1" : "0" }, timeoutMs: timeouts.logsOpen(), signal });
export const releases = (e: UpdaterEndpoint, signal?: AbortSignal) => call(ep(e), updaterApi.releases, { timeoutMs: timeouts.request(), signal });
export const rollback = (e: UpdaterEndpoint) => call(ep(e), updaterApi.rollback, { timeoutMs: timeouts.rollback() });
/** POST /trust: one trust document, exactly as trust.json holds it. */
export const pushTrust = (e: UpdaterEndpoint, text: string) =>
  call(ep(e), updaterApi.trust, { body: new TextEncoder().encode(text), headers: { "content-type": "application/json" }, timeoutMs: timeouts.request() });
export const blocks = (e: UpdaterEndpoint, release: string, slot: Slot = "agent", signal?: AbortSignal) =>
  call(ep(e), updaterApi.blocks, { query: { release, slot }, timeoutMs: timeouts.request(), signal });

/** POST /blocks: the compact index of `release`, the groups `query` (encodeIndexQuery) does not already match; its bytes as received on the wire. */
export async function blocksCompact(e: UpdaterEndpoint, release: string, slot: Slot, query: Uint8Array, signal?: AbortSignal): Promise<{ index: Uint8Array; wire: number }> {
  const r = await call(ep(e), updaterApi.blocksCompact, { query: { release, slot }, json: { query: Buffer.from(query).toString("base64") }, timeoutMs: timeouts.request(), signal });
  return { index: new Uint8Array(Buffer.from(r.index, "base64")), wire: r.index.length + 12 };
}

/**
 * A file as a stream of 1 MiB reads: a sixteenth of the chunks (and of the
 * per-chunk stream overhead, measured as most of the master's CPU in a
 * 12-host push) of Bun.file().stream().
 */
export function fileStream(file: string): ReadableStream<Uint8Array> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(ctl) {
      handle ??= await open(file, "r");
      const buf = new Uint8Array(1024 * 1024);
      const { bytesRead } = await handle.read(buf, 0, buf.byteLength, null);
      if (bytesRead === 0) {
        await handle.close();
        return ctl.close();
      }
      ctl.enqueue(buf.subarray(0, bytesRead));
    },
    async cancel() {
      await handle?.close();
    },
  });
}

export interface Upload {
  /** The agent's release set (/update) or the updater's own (/update-self). */
  slot: Slot;
  body: ReadableStream<Uint8Array>;
  /** Body length when known up front. */
  length: number | null;
  /** A delta against this base release; absent for a whole tarball. */
  delta?: string;
  /** The delta's format: sent only for 2 (an updater before format 2 knows no such parameter). */
  format?: 1 | 2;
  /** A signed release older than the running one may go in (never below the floor). */
  allowDowngrade?: boolean;
  onBytes?: (sent: number, total: number | null) => void;
  /** Stops the upload (and the wait for its answer) mid-way. */
  signal?: AbortSignal;
}

/**
 * Streams a release (whole or delta) to /update or /update-self, counting
 * bytes as they leave; never holds the release in memory.
 */
export async function upload(e: UpdaterEndpoint, u: Upload) {
  let sent = 0;
  const reader = u.body.getReader();
  const counted = new ReadableStream<Uint8Array>({
    async pull(ctl) {
      const r = await reader.read();
      if (r.done) return ctl.close();
      sent += r.value.byteLength;
      u.onBytes?.(sent, u.length);
      ctl.enqueue(r.value);
    },
    cancel: (why) => reader.cancel(why),
  });
  const o = {
    body: counted,
    headers: { "content-type": "application/gzip", ...(u.length === null ? {} : { "content-length": String(u.length) }) },
    timeoutMs: timeouts.upload(u.length ?? 0),
    signal: u.signal,
  };
  const allow_downgrade = u.allowDowngrade ? ("true" as const) : undefined;
  const format = u.format === 2 ? ("2" as const) : undefined;
  const result = u.slot === "updater"
    ? await call(ep(e), updaterApi.updateSelf, { ...o, query: { confirm_self: "true", delta: u.delta, format, allow_downgrade } })
    : await call(ep(e), updaterApi.update, { ...o, query: { delta: u.delta, format, allow_downgrade } });
  return { result, bytesSent: sent };
}

/**
 * Polls the updater's /health until it reports `release` — or reports that
 * the new updater never confirmed itself and the previous one took over
 * again (RemoteError `self_rolled_back`, with its last words) — or throws at
 * the deadline.
 */
export async function waitForUpdaterRelease(e: UpdaterEndpoint, release: string, timeoutMs: number, signal?: AbortSignal): Promise<UpdaterHealth> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  let wait = 100;
  while (Date.now() < deadline) {
    if (signal?.aborted) throw aborted(ep(e));
    try {
      const h = await updaterHealth(e, signal);
      if (h.release === release && h.self_update?.outcome !== "trial") return h;
      const s = h.self_update;
      if (s?.target === release && s.outcome === "rolled-back") {
        const said = s.log_tail?.trim().split("\n").filter(Boolean).at(-1);
        throw new RemoteError(e.host, "self_rolled_back", `the new updater never confirmed itself; the previous one (${h.release?.slice(0, 12) ?? "?"}) runs again${said ? ` — it said: ${said}` : ""}`, 0, s);
      }
      last = `it still reports release ${h.release?.slice(0, 12) ?? "none"}`;
    } catch (err) {
      if (err instanceof RemoteError && (err.code === "self_rolled_back" || err.code === "aborted")) throw err;
      last = err instanceof Error ? err.message : err;
    }
    await Bun.sleep(wait);
    wait = Math.min(wait * 2, 1000);
  }
  throw new RemoteError(e.host, "timeout", `the updater did not come back on release ${release.slice(0, 12)} within ${Math.round(timeoutMs / 1000)} s (${String(last)})`, 0, undefined, "check updater.log on the host; raise DECNET_SELF_UPDATE_TIMEOUT_MS for a slow host");
}
