/**
 * `swarm logs`: a host's agent output (or its updater's log) through the
 * updater's GET /logs, handed to the caller line by line — each line
 * bounded, a tail bounded in bytes, a followed stream ended by `signal`.
 */
import { openLogs } from "../../client/updater.ts";
import { transportError } from "../../client/http.ts";
import { LOG_LINES_MAX, LOG_TAIL_MAX_BYTES } from "../../protocol/updater.ts";
import { RemoteError, usageError } from "../../lib/errors.ts";
import { timeouts } from "../../lib/timeouts.ts";
import { ensureMasterIdentity } from "../identity.ts";
import { Registry } from "../registry.ts";
import { requireHost } from "./hosts.ts";

/** A line longer than this is cut (and says so): a worker's one endless line must not fill the operator's memory. */
export const LINE_MAX = 16 * 1024;

export interface LogsOptions {
  host: string;
  /** The updater's own log instead of the agent's output. */
  updater?: boolean;
  lines?: number;
  follow?: boolean;
  /** Ends a followed stream (Ctrl-C); the call then returns normally. */
  signal?: AbortSignal;
  onLine: (line: string) => void;
}

/**
 * Splits a byte stream into lines for `onLine`: UTF-8 decoded, a line over
 * `maxLine` characters cut with a marker and its rest skipped, at most
 * `maxBytes` read. Returns the bytes read.
 */
export async function eachLine(body: ReadableStream<Uint8Array>, onLine: (line: string) => void, o: { maxLine: number; maxBytes: number; tooMuch: () => Error }): Promise<number> {
  const decoder = new TextDecoder("utf-8");
  let partial = "";
  let skipping = false;
  let bytes = 0;
  const take = (text: string, final: boolean) => {
    const parts = (partial + text).split("\n");
    partial = final ? "" : parts.pop()!;
    if (final && parts.at(-1) === "") parts.pop();
    for (const p of parts) {
      if (!skipping) onLine(p);
      skipping = false;
    }
    if (partial.length > o.maxLine) {
      if (!skipping) onLine(`${partial.slice(0, o.maxLine)} … (line cut at ${o.maxLine} characters)`);
      skipping = true;
      partial = "";
    }
  };
  for await (const chunk of body) {
    bytes += chunk.byteLength;
    if (bytes > o.maxBytes) throw o.tooMuch();
    take(decoder.decode(chunk, { stream: true }), false);
  }
  take(decoder.decode(), true);
  return bytes;
}

export async function logs(o: LogsOptions): Promise<void> {
  const lines = o.lines ?? 100;
  if (!Number.isInteger(lines) || lines < 1 || lines > LOG_LINES_MAX) throw usageError(`-n takes a whole number from 1 to ${LOG_LINES_MAX}`);
  let e;
  {
    using reg = new Registry();
    const h = await requireHost(reg, o.host);
    e = { host: h.name, address: h.address, port: h.updater_port };
  }
  await ensureMasterIdentity();
  if (o.signal?.aborted) return;
  // A tail must arrive whole within the request timeout (a worker may trickle); a followed stream has no end.
  const deadline = o.follow ? null : AbortSignal.timeout(timeouts.logsOpen());
  const signal = deadline ? (o.signal ? AbortSignal.any([o.signal, deadline]) : deadline) : o.signal;
  const stopped = () => o.signal?.aborted === true;
  let body: ReadableStream<Uint8Array>;
  try {
    body = await openLogs(e, { source: o.updater ? "updater" : "agent", lines, follow: Boolean(o.follow) }, signal);
  } catch (err) {
    if (stopped()) return;
    throw err;
  }
  const endpoint = { ...e, role: "updater" as const };
  try {
    await eachLine(body, o.onLine, {
      maxLine: LINE_MAX,
      // A tail is bounded by the route's answer limit (and a little for the last line); a followed stream only by its reader.
      maxBytes: o.follow ? Number.POSITIVE_INFINITY : LOG_TAIL_MAX_BYTES + LINE_MAX,
      tooMuch: () => new RemoteError(e.host, "bad_response", `updater answered more than ${LOG_TAIL_MAX_BYTES} bytes of log, the most a tail may have`),
    });
  } catch (err) {
    if (stopped()) return;
    if (err instanceof RemoteError) throw err;
    if (deadline?.aborted) throw new RemoteError(e.host, "timeout", `the log tail did not arrive within ${Math.round(timeouts.logsOpen() / 1000)} s`, 0, undefined, "raise DECNET_REQUEST_TIMEOUT_MS for a slow link");
    throw transportError(endpoint, err, timeouts.logsOpen());
  }
}
