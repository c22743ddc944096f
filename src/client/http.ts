/**
 * Master → worker HTTPS: mTLS with the master identity, the expected-CN and
 * SAN check, a named timeout, the answer parsed with the route's schema, and
 * every failure turned into a RemoteError with a code and, where the cause is
 * known, what to do.
 */
import type { z } from "zod";
import { ErrorBody, PROTOCOL_VERSION, VERSION_HEADER } from "../protocol/common.ts";
import { RemoteError } from "../lib/errors.ts";
import { homePaths } from "../lib/paths.ts";
import { type Bundle, clientTls, readBundle } from "../lib/tls.ts";

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
  if (/server identity|does not list|CN=/.test(msg)) {
    return new RemoteError(e.host, "identity", `${where} is not ${expectedCn(e)}: ${msg}`, 0, undefined, "check the host's --address and the bundle installed on it");
  }
  if (x.code === "EPROTO" || x.code === "ECONNRESET" || /handshake|certificate|SSL|TLS/i.test(msg)) {
    return new RemoteError(e.host, "handshake", `TLS handshake with ${where} failed (${x.code ?? msg})`, 0, undefined,
      `the ${e.role} likely has a bundle from another CA, or the master identity is wrong (it lives in ~/.decnet/ca/master/)`);
  }
  if (x.code === "EHOSTUNREACH" || x.code === "ENETUNREACH" || x.code === "EADDRNOTAVAIL" || x.code === "ENOTFOUND") {
    return new RemoteError(e.host, "unreachable", `${where} cannot be reached (${x.code})`, 0, undefined, "check the address in `decnet swarm list`");
  }
  return new RemoteError(e.host, "unreachable", `request to ${where} failed: ${msg}`);
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

export interface CallOptions<T> {
  method?: "GET" | "POST";
  schema: z.ZodType<T>;
  body?: RequestInit["body"];
  headers?: Record<string, string>;
  timeoutMs: number;
  bundle?: Bundle;
  /** Called once when the worker speaks another protocol version. */
  onVersionMismatch?: (theirs: string) => void;
}

export async function call<T>(e: Endpoint, path: string, o: CallOptions<T>): Promise<T> {
  const tls = clientTls(o.bundle ?? masterBundle(), expectedCn(e));
  let res: Response;
  try {
    res = await fetch(urlFor(e, path), {
      method: o.method ?? "GET",
      body: o.body,
      headers: o.headers,
      tls,
      signal: AbortSignal.timeout(o.timeoutMs),
      // A streamed upload must not be buffered for a retry.
      duplex: o.body instanceof ReadableStream ? "half" : undefined,
    } as RequestInit);
  } catch (err) {
    throw transportError(e, err, o.timeoutMs);
  }
  const theirs = res.headers.get(VERSION_HEADER);
  if (theirs && theirs !== String(PROTOCOL_VERSION)) o.onVersionMismatch?.(theirs);
  let text: string;
  try {
    text = await res.text();
  } catch (err) {
    throw transportError(e, err, o.timeoutMs);
  }
  if (res.status < 200 || res.status > 299) throw answerError(e, res.status, text);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new RemoteError(e.host, "bad_response", `${e.role} answered HTTP ${res.status} with something that is not JSON`, res.status);
  }
  const r = o.schema.safeParse(json);
  if (!r.success) throw new RemoteError(e.host, "bad_response", `${e.role} answered an unexpected shape: ${r.error.issues[0]?.message}`, res.status);
  return r.data;
}
