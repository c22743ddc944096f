/**
 * Master → worker HTTPS: mTLS with the master identity, the expected-CN and
 * SAN check, a named timeout, an answer read under the route's size limit
 * (never decompressed: a worker may be rooted, and 11 kB of gzip can be
 * gigabytes) and parsed with the route's schema, and every failure turned
 * into a RemoteError with a code and, where the cause is known, what to do.
 */
import { ErrorBody, PROTOCOL_VERSION, VERSION_HEADER } from "../protocol/common.ts";
import { ANSWER_LIMIT, type BodyOf, pathWithQuery, type QueryInput, type ResponseOf, type RouteSpec } from "../protocol/route.ts";
import { RemoteError } from "../lib/errors.ts";
import { homePaths } from "../lib/paths.ts";
import { type Bundle, clientTls, readBundle, ServerIdentityError } from "../lib/tls.ts";

export interface Endpoint {
  host: string;
  address: string;
  port: number;
  role: "agent" | "updater";
}

let cachedBundle: { dir: string; bundle: Bundle } | undefined;

/** The master identity, read once per process (a fan-out makes several calls per host). */
export function masterBundle(): Bundle {
  const paths = homePaths().master;
  if (cachedBundle?.dir !== paths.dir) {
    cachedBundle = { dir: paths.dir, bundle: readBundle(paths, "the master identity is created by any `decnet swarm` command (e.g. `decnet swarm list`)") };
  }
  return cachedBundle.bundle;
}

export function expectedCn(e: Endpoint): string {
  return e.role === "agent" ? e.host : `updater@${e.host}`;
}

function urlFor(e: Endpoint, path: string): string {
  const addr = e.address.includes(":") ? `[${e.address}]` : e.address;
  return `https://${addr}:${e.port}${path}`;
}

/** Transport failure → RemoteError, with the likely cause spelled out. */
export function transportError(e: Endpoint, err: unknown, timeoutMs: number): RemoteError {
  const where = `${e.address}:${e.port}`;
  if (err instanceof RemoteError) return err;
  if (err instanceof ServerIdentityError) {
    return new RemoteError(e.host, "identity", `${where} is not ${expectedCn(e)}: ${err.message}`, 0, undefined, "check the host's --address and the bundle installed on it");
  }
  const x = err as { code?: string; name?: string; message?: string };
  const msg = x.message ?? String(err);
  if (x.name === "TimeoutError" || x.name === "AbortError" || x.code === "ETIMEDOUT") {
    return new RemoteError(e.host, "timeout", `no answer from ${e.role} at ${where} within ${Math.round(timeoutMs / 1000)} s`, 0, undefined,
      e.role === "updater" ? "is an updater running there? (`decnet updater --daemon …`); raise DECNET_REQUEST_TIMEOUT_MS/DECNET_UPLOAD_TIMEOUT_MS for a slow link" : "is the agent running there?");
  }
  if (x.code === "ECONNREFUSED" || x.code === "ConnectionRefused") {
    return new RemoteError(e.host, "unreachable", `connection refused by ${where}`, 0, undefined,
      e.role === "updater" ? "no updater is listening there; start one with `decnet updater --daemon …`" : "no agent is listening there");
  }
  if (x.code === "ECONNRESET" || x.code === "ConnectionClosed") {
    return new RemoteError(e.host, "unreachable", `the ${e.role} at ${where} closed the connection mid-request`, 0, undefined,
      `the ${e.role} may have stopped or restarted; check it with \`decnet swarm list\` and try again`);
  }
  if (x.code === "EPROTO" || /handshake|certificate|SSL|TLS/i.test(msg)) {
    return new RemoteError(e.host, "handshake", `TLS handshake with ${where} failed (${x.code ?? msg})`, 0, undefined,
      `the ${e.role} likely has a bundle from another CA, or the master identity is wrong (it lives in ~/.decnet/ca/master/)`);
  }
  if (x.code === "EHOSTUNREACH" || x.code === "ENETUNREACH" || x.code === "EADDRNOTAVAIL" || x.code === "ENOTFOUND") {
    return new RemoteError(e.host, "unreachable", `${where} cannot be reached (${x.code})`, 0, undefined, "check the address in `decnet swarm list`");
  }
  return new RemoteError(e.host, "unreachable", `request to ${where} failed: ${msg}`);
}

/** The operator stopped the request; the worker's journal finishes or undoes what it had started. */
export function aborted(e: Endpoint): RemoteError {
  return new RemoteError(e.host, "aborted", `the request to the ${e.role} at ${e.address}:${e.port} was aborted by the operator`);
}

/** An error answer of any shape (error body, other JSON, text, empty) → RemoteError. */
function answerError(e: Endpoint, status: number, text: string): RemoteError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {}
  const body = ErrorBody.safeParse(parsed);
  if (body.success) return new RemoteError(e.host, body.data.error.code, body.data.error.message, status, body.data.error.detail);
  const snippet = text.trim().slice(0, 200);
  return new RemoteError(e.host, "bad_response", `${e.role} answered HTTP ${status}${snippet ? `: ${snippet}` : " with an empty body"}`, status);
}

/** The answer's bytes as text, refusing an encoded answer or one past `limit` bytes. */
async function readAnswer(e: Endpoint, res: Response, limit: number): Promise<string> {
  const encoding = res.headers.get("content-encoding");
  if (encoding && encoding !== "identity") {
    await res.body?.cancel();
    throw new RemoteError(e.host, "bad_response", `${e.role} answered with content-encoding ${encoding.slice(0, 40)}, which the master does not accept`, res.status);
  }
  const declared = Number(res.headers.get("content-length") ?? "0");
  const tooLarge = () => new RemoteError(e.host, "bad_response", `${e.role} answered more than ${limit} bytes, the most this request's answer may have`, res.status);
  if (declared > limit) {
    await res.body?.cancel();
    throw tooLarge();
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (res.body) {
    const reader = res.body.getReader();
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      total += r.value.byteLength;
      if (total > limit) {
        await reader.cancel();
        throw tooLarge();
      }
      chunks.push(r.value);
    }
  }
  return Buffer.concat(chunks).toString("utf8");
}

export interface CallOptions<S extends RouteSpec> {
  query?: QueryInput<S>;
  /** A JSON body, for routes with a body schema. */
  json?: BodyOf<S>;
  /** A streamed or raw body, for upload routes. */
  body?: ReadableStream<Uint8Array> | Uint8Array;
  headers?: Record<string, string>;
  timeoutMs: number;
  bundle?: Bundle;
  /** Called once when the worker speaks another protocol version. */
  onVersionMismatch?: (theirs: string) => void;
  /** The operator's abort (a rollout's second Ctrl-C): the request stops, as RemoteError `aborted`. */
  signal?: AbortSignal;
}

export async function call<S extends RouteSpec>(e: Endpoint, spec: S, o: CallOptions<S>): Promise<ResponseOf<S>> {
  const tls = clientTls(o.bundle ?? masterBundle(), expectedCn(e));
  const signal = o.signal ? AbortSignal.any([AbortSignal.timeout(o.timeoutMs), o.signal]) : AbortSignal.timeout(o.timeoutMs);
  const path = pathWithQuery(spec, o.query as Record<string, string> | undefined);
  let res: Response;
  let text: string;
  try {
    res = await fetch(urlFor(e, path), {
      method: spec.method,
      body: o.json !== undefined ? JSON.stringify(o.json) : o.body,
      headers: { "accept-encoding": "identity", ...(o.json !== undefined ? { "content-type": "application/json" } : {}), ...o.headers },
      tls,
      signal,
      decompress: false,
      // A streamed upload must not be buffered for a retry.
      duplex: o.body instanceof ReadableStream ? "half" : undefined,
    } as RequestInit);
    const theirs = res.headers.get(VERSION_HEADER);
    if (theirs && theirs !== String(PROTOCOL_VERSION)) o.onVersionMismatch?.(theirs);
    text = await readAnswer(e, res, spec.answerLimit ?? ANSWER_LIMIT);
  } catch (err) {
    if (o.signal?.aborted) throw aborted(e);
    throw transportError(e, err, o.timeoutMs);
  }
  if (res.status < 200 || res.status > 299) throw answerError(e, res.status, text);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new RemoteError(e.host, "bad_response", `${e.role} answered HTTP ${res.status} with something that is not JSON`, res.status);
  }
  const r = spec.response.safeParse(json);
  if (!r.success) throw new RemoteError(e.host, "bad_response", `${e.role} answered an unexpected shape: ${r.error.issues[0]?.message}`, res.status);
  return r.data as ResponseOf<S>;
}

export interface OpenTextOptions<S extends RouteSpec> {
  query?: QueryInput<S>;
  /** Covers connecting and the answer's head only: a followed stream has no deadline. */
  timeoutMs: number;
  /** Ends the stream (Ctrl-C). */
  signal?: AbortSignal;
  bundle?: Bundle;
}

/**
 * A text route (`text: true`: a log tail, metrics) opened with the same
 * identity checks and error decoding as call(); the caller reads the body
 * and bounds it (a followed log has no end). An error answer is read under
 * ANSWER_LIMIT and thrown as a RemoteError.
 */
export async function openText<S extends RouteSpec>(e: Endpoint, spec: S, o: OpenTextOptions<S>): Promise<ReadableStream<Uint8Array>> {
  const tls = clientTls(o.bundle ?? masterBundle(), expectedCn(e));
  const head = new AbortController();
  const timer = setTimeout(() => head.abort(new DOMException("no answer", "TimeoutError")), o.timeoutMs);
  const signal = o.signal ? AbortSignal.any([head.signal, o.signal]) : head.signal;
  let res: Response;
  try {
    res = await fetch(urlFor(e, pathWithQuery(spec, o.query as Record<string, string> | undefined)), {
      method: spec.method,
      headers: { "accept-encoding": "identity" },
      tls,
      signal,
      decompress: false,
    } as RequestInit);
    const encoding = res.headers.get("content-encoding");
    if (encoding && encoding !== "identity") {
      await res.body?.cancel();
      throw new RemoteError(e.host, "bad_response", `${e.role} answered with content-encoding ${encoding.slice(0, 40)}, which the master does not accept`, res.status);
    }
    if (res.status < 200 || res.status > 299) throw answerError(e, res.status, await readAnswer(e, res, ANSWER_LIMIT));
  } catch (err) {
    throw transportError(e, err, o.timeoutMs);
  } finally {
    clearTimeout(timer);
  }
  return res.body ?? new ReadableStream({ start: (c) => c.close() });
}
