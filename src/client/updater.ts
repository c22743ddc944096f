/** One typed function per updater route. */
import { statSync } from "node:fs";
import { ReleasesResponse, SwitchResponse, UpdaterHealth } from "../protocol/updater.ts";
import { timeouts } from "../lib/timeouts.ts";
import { call, type Endpoint } from "./http.ts";

export type UpdaterEndpoint = Omit<Endpoint, "role">;
const ep = (e: UpdaterEndpoint): Endpoint => ({ ...e, role: "updater" });

export const updaterHealth = (e: UpdaterEndpoint) => call(ep(e), "/health", { schema: UpdaterHealth, timeoutMs: timeouts.request() });
export const releases = (e: UpdaterEndpoint) => call(ep(e), "/releases", { schema: ReleasesResponse, timeoutMs: timeouts.request() });
export const rollback = (e: UpdaterEndpoint) => call(ep(e), "/rollback", { method: "POST", schema: SwitchResponse, timeoutMs: timeouts.rollback() });

/**
 * Streams a release tarball to /update, reporting bytes as they leave. The
 * file is never read whole into memory.
 */
export async function update(e: UpdaterEndpoint, file: string, onBytes?: (sent: number, total: number) => void) {
  const total = statSync(file).size;
  let sent = 0;
  const src = Bun.file(file).stream();
  const counted = src.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, ctl) {
        sent += chunk.byteLength;
        onBytes?.(sent, total);
        ctl.enqueue(chunk);
      },
    }),
  );
  const result = await call(ep(e), "/update", {
    method: "POST",
    schema: SwitchResponse,
    body: counted,
    headers: { "content-type": "application/gzip", "content-length": String(total) },
    timeoutMs: timeouts.upload(total),
  });
  return { result, bytesSent: sent };
}
