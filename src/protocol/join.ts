/**
 * The join exchange (README "Joining a worker"): two requests from the master
 * to a worker that has only a token. Message shapes, and the HMAC proofs
 * that bind the token's secret to the CA, both nonces, the worker's TLS
 * certificate, its CSRs and the certificates issued for them.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import type { JoinToken } from "./join-token.ts";
import { defineRoute } from "./route.ts";

export const JOIN_VERSION = 1;
/** PEM certificates and CSRs of P-256 keys are under 1 KiB; a trust document is small too. */
const MAX_PEM = 8 * 1024;
const MAX_TRUST = 64 * 1024;

const Pem = z.string().min(1).max(MAX_PEM);
const Nonce = z.string().regex(/^[A-Za-z0-9_-]{43}$/, "32 bytes, base64url");
const Proof = z.string().regex(/^[0-9a-f]{64}$/, "an HMAC-SHA256, hex");

export const HelloRequest = z.object({ v: z.literal(JOIN_VERSION), host: z.string().max(63), ca: Pem, nonce: Nonce }).strict();
export type HelloRequest = z.infer<typeof HelloRequest>;

export const HelloResponse = z.object({
  v: z.literal(JOIN_VERSION),
  /** The self-signed certificate the worker's join listener serves; the master pins it for /join/finish. */
  tls_cert: Pem,
  csr: z.object({ agent: Pem, updater: Pem }).strict(),
  nonce: Nonce,
  proof: Proof,
}).strict();
export type HelloResponse = z.infer<typeof HelloResponse>;

export const FinishRequest = z.object({
  v: z.literal(JOIN_VERSION),
  /** The worker's nonce from /join/hello: which hello this finishes. */
  nonce: Nonce,
  certs: z.object({ agent: Pem, updater: Pem }).strict(),
  trust: z.string().max(MAX_TRUST).nullable(),
  proof: Proof,
}).strict();
export type FinishRequest = z.infer<typeof FinishRequest>;

export const FinishResponse = z.object({
  v: z.literal(JOIN_VERSION),
  serials: z.object({ agent: z.string(), updater: z.string() }).strict(),
  proof: Proof,
}).strict();
export type FinishResponse = z.infer<typeof FinishResponse>;

/** The only routes a joining updater serves. */
export const joinApi = {
  finish: defineRoute({ method: "POST", path: "/join/finish", body: FinishRequest, response: FinishResponse }),
  hello: defineRoute({ method: "POST", path: "/join/hello", body: HelloRequest, response: HelloResponse }),
};

export function newNonce(): string {
  return randomBytes(32).toString("base64url");
}

export function sha256(data: string | Uint8Array): Buffer {
  return createHash("sha256").update(data).digest();
}

/** Length-prefixed fields, so no two field lists encode alike. */
function encode(fields: Array<string | Uint8Array>): Buffer {
  return Buffer.concat(
    fields.flatMap((f) => {
      const b = typeof f === "string" ? Buffer.from(f, "utf8") : Buffer.from(f);
      const len = Buffer.alloc(4);
      len.writeUInt32BE(b.length);
      return [len, b];
    }),
  );
}

/** The proof key: every field of the token is in it, so a changed token proves nothing. */
function proofKey(t: JoinToken): Buffer {
  return createHmac("sha256", Buffer.from(t.secret, "base64url")).update(encode(["decnet-join/1 key", t.host, t.ca, String(t.expires)])).digest();
}

function mac(t: JoinToken, label: string, fields: Array<string | Uint8Array>): string {
  return createHmac("sha256", proofKey(t)).update(encode([label, ...fields])).digest("hex");
}

/** What /join/hello carried; PEM texts exactly as sent (both ends hash the same strings). */
export interface HelloFacts {
  /** The CA the master showed (the worker checked its DER hash against the token). */
  caPem: string;
  masterNonce: string;
  workerNonce: string;
  tlsCert: string;
  agentCsr: string;
  updaterCsr: string;
}

/** Everything /join/hello established, as one digest the later proofs chain from. */
export function helloTranscript(t: JoinToken, f: HelloFacts): Buffer {
  return sha256(encode(["hello", t.host, t.ca, sha256(f.caPem), f.masterNonce, f.workerNonce, sha256(f.tlsCert), sha256(f.agentCsr), sha256(f.updaterCsr)]));
}

/** The worker's proof in /join/hello: it holds the secret, and these are its certificate and CSRs. */
export function workerHelloProof(t: JoinToken, hello: Buffer): string {
  return mac(t, "worker-hello", [hello]);
}

export interface FinishFacts {
  agentCert: string;
  updaterCert: string;
  trust: string | null;
}

export function finishTranscript(hello: Buffer, f: FinishFacts): Buffer {
  return sha256(encode(["finish", hello, sha256(f.agentCert), sha256(f.updaterCert), f.trust === null ? "none" : sha256(f.trust)]));
}

/** The master's proof in /join/finish: it holds the secret, saw this hello, and sends these certificates. */
export function masterFinishProof(t: JoinToken, finish: Buffer): string {
  return mac(t, "master-finish", [finish]);
}

/** The worker's answer to /join/finish: it installed exactly these. */
export function workerDoneProof(t: JoinToken, finish: Buffer): string {
  return mac(t, "worker-done", [finish]);
}

export function proofsEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, "hex");
  const y = Buffer.from(b, "hex");
  return x.length === 32 && y.length === 32 && timingSafeEqual(x, y);
}
