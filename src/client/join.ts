/**
 * Master → joining worker HTTPS. The worker has no certificate from the CA
 * yet: /join/hello goes over unauthenticated TLS (the answer is judged by its
 * proof), /join/finish only to the TLS certificate that proof covered.
 */
import type { z } from "zod";
import { RemoteError } from "../lib/errors.ts";
import { sha256Hex } from "../lib/x509.ts";
import { ErrorBody } from "../protocol/common.ts";
import type { RouteSpec } from "../protocol/route.ts";
import { type FinishRequest, type FinishResponse, type HelloRequest, type HelloResponse, joinApi } from "../protocol/join.ts";
import { transportError } from "./http.ts";

export interface JoinEndpoint {
  host: string;
  address: string;
  port: number;
  timeoutMs: number;
}

interface PeerCert {
  fingerprint256?: string;
}

const url = (e: JoinEndpoint, spec: RouteSpec) => `https://${e.address.includes(":") ? `[${e.address}]` : e.address}:${e.port}${spec.path}`;

async function post<T>(e: JoinEndpoint, spec: RouteSpec & { body: z.ZodType }, body: unknown, schema: z.ZodType<T>, tls: Record<string, unknown>): Promise<T> {
  let res: Response;
  let text: string;
  const endpoint = { host: e.host, address: e.address, port: e.port, role: "updater" as const };
  try {
    // keepalive off: /join/finish must open its own, pinned connection, never reuse hello's.
    res = await fetch(url(e, spec), { method: spec.method, body: JSON.stringify(spec.body.parse(body)), headers: { "content-type": "application/json" }, tls, keepalive: false, signal: AbortSignal.timeout(e.timeoutMs) } as RequestInit);
    text = await res.text();
  } catch (err) {
    throw transportError(endpoint, err, e.timeoutMs);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new RemoteError(e.host, "bad_response", `${e.address}:${e.port} answered HTTP ${res.status} with something that is not JSON: is it a joining updater?`, res.status);
  }
  if (res.status < 200 || res.status > 299) {
    const eb = ErrorBody.safeParse(json);
    if (eb.success) throw new RemoteError(e.host, eb.data.error.code, eb.data.error.message, res.status, eb.data.error.detail);
    throw new RemoteError(e.host, "bad_response", `${e.address}:${e.port} answered HTTP ${res.status}`, res.status);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new RemoteError(e.host, "bad_response", `the worker's ${spec.path} answer has an unexpected shape: ${parsed.error.issues[0]?.message}`, res.status);
  return parsed.data;
}

/** /join/hello: any TLS certificate; the worker's proof is what counts. */
export function joinHello(e: JoinEndpoint, body: HelloRequest): Promise<HelloResponse> {
  return post(e, joinApi.hello, body, joinApi.hello.response, { rejectUnauthorized: false });
}

/** /join/finish: only to the certificate the worker proved in /join/hello (by its DER sha256). */
export async function joinFinish(e: JoinEndpoint, pinnedPem: string, pinnedDer: Uint8Array, body: FinishRequest): Promise<FinishResponse> {
  const want = sha256Hex(pinnedDer);
  try {
    return await post(e, joinApi.finish, body, joinApi.finish.response, {
      ca: pinnedPem, // chain check: only that self-signed certificate is trusted …
      checkServerIdentity(_host: string, cert: PeerCert): Error | undefined {
        // … and it must be that very certificate, whatever names it carries.
        const seen = (cert.fingerprint256 ?? "").replaceAll(":", "").toLowerCase();
        return seen === want ? undefined : new Error(`server identity is sha256 ${seen.slice(0, 16)}…`);
      },
    });
  } catch (err) {
    if (err instanceof RemoteError && (err.code === "handshake" || err.code === "identity")) {
      throw new RemoteError(e.host, "join_refused", `the TLS certificate at ${e.address}:${e.port} is not the one the worker proved in /join/hello`, 0, undefined,
        "something between the master and the worker terminates TLS; join over a direct path");
    }
    throw err;
  }
}
