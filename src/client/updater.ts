/** One typed function per updater route. */
import { statSync } from "node:fs";
import { open } from "node:fs/promises";
import { BlocksResponse } from "../protocol/delta.ts";
import { ReleasesResponse, SwitchResponse, UpdaterHealth } from "../protocol/updater.ts";
import type { UpdaterHealth as Health } from "../protocol/updater.ts";
import { RemoteError } from "../lib/errors.ts";
import { timeouts } from "../lib/timeouts.ts";
import { call, type Endpoint } from "./http.ts";

export type UpdaterEndpoint = Omit<Endpoint, "role">;
const ep = (e: UpdaterEndpoint): Endpoint => ({ ...e, role: "updater" });

export const updaterHealth = (e: UpdaterEndpoint) => call(ep(e), "/health", { schema: UpdaterHealth, timeoutMs: timeouts.request() });
export const releases = (e: UpdaterEndpoint) => call(ep(e), "/releases", { schema: ReleasesResponse, timeoutMs: timeouts.request() });
export const rollback = (e: UpdaterEndpoint) => call(ep(e), "/rollback", { method: "POST", schema: SwitchResponse, timeoutMs: timeouts.rollback() });

export const blocks = (e: UpdaterEndpoint, release: string, slot: "agent" | "updater" = "agent") =>
  call(ep(e), `/blocks?release=${release}&slot=${slot}`, { schema: BlocksResponse, timeoutMs: timeouts.request() });

/**
 * Streams a body to an upload route, counting bytes as they leave; never
 * holds the release in memory. `total` is null for a delta (length unknown).
 */
async function upload(e: UpdaterEndpoint, path: string, src: ReadableStream<Uint8Array>, total: number | null, onBytes?: (sent: number, total: number | null) => void) {
  let sent = 0;
  const reader = src.getReader();
  const counted = new ReadableStream<Uint8Array>({
    async pull(ctl) {
      const r = await reader.read();
      if (r.done) return ctl.close();
      sent += r.value.byteLength;
      onBytes?.(sent, total);
      ctl.enqueue(r.value);
    },
    cancel: (why) => reader.cancel(why),
  });
  const result = await call(ep(e), path, {
    method: "POST",
    schema: SwitchResponse,
    body: counted,
    headers: { "content-type": "application/gzip", ...(total === null ? {} : { "content-length": String(total) }) },
    timeoutMs: timeouts.upload(total ?? 0),
  });
  return { result, bytesSent: sent };
}

/**
 * A file as a stream of 1 MiB reads: a sixteenth of the chunks (and of the
 * per-chunk stream overhead, measured as most of the master's CPU in a
 * 12-host push) of Bun.file().stream().
 */
function fileStream(file: string): ReadableStream<Uint8Array> {
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

/** A full release tarball to /update. */
export const update = (e: UpdaterEndpoint, file: string, onBytes?: (sent: number, total: number | null) => void, path = "/update") =>
  upload(e, path, fileStream(file), statSync(file).size, onBytes);

/** A delta against `base` (already compressed, in memory) to /update?delta=base, or /update-self's. */
export const updateDelta = (e: UpdaterEndpoint, base: string, body: Uint8Array, onBytes?: (sent: number, total: number | null) => void, self = false) =>
  upload(e, `${self ? "/update-self?confirm_self=true&" : "/update?"}delta=${base}`, new Blob([body]).stream(), body.byteLength, onBytes);

/** /update-self: the same streamed upload; answered 202 before the updater re-executes. */
export const updateSelf = (e: UpdaterEndpoint, file: string, onBytes?: (sent: number, total: number | null) => void) =>
  update(e, file, onBytes, "/update-self?confirm_self=true");

/** Polls the updater's /health until it reports `release`, or throws at the deadline. */
export async function waitForUpdaterRelease(e: UpdaterEndpoint, release: string, timeoutMs: number): Promise<Health> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  let wait = 100;
  while (Date.now() < deadline) {
    try {
      const h = await updaterHealth(e);
      if (h.release === release) return h;
      last = `it still reports release ${h.release?.slice(0, 12) ?? "none"}`;
    } catch (err) {
      last = err instanceof Error ? err.message : err;
    }
    await Bun.sleep(wait);
    wait = Math.min(wait * 2, 1000);
  }
  throw new RemoteError(e.host, "timeout", `the updater did not come back on release ${release.slice(0, 12)} within ${Math.round(timeoutMs / 1000)} s (${String(last)})`, 0, undefined, "check updater.log on the host; raise DECNET_SELF_UPDATE_TIMEOUT_MS for a slow host");
}
