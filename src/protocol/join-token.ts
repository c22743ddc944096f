/**
 * The join token: `decnet-join:1:<host>:<CA sha256>:<secret>:<expiry>:<check>`.
 * It names the host, pins the CA, carries a 256-bit secret and its expiry;
 * the check digits catch a mistyped or truncated token before any network.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

export const TOKEN_PREFIX = "decnet-join:";
export const TOKEN_VERSION = "1";
export const MAX_TOKEN_LENGTH = 256;
/** DESIGN §14: 30 minutes unless --ttl says otherwise (Teleport's default too). */
export const DEFAULT_TOKEN_TTL_MS = 30 * 60_000;

export interface JoinToken {
  host: string;
  /** sha256 of the CA certificate's DER, lowercase hex. */
  ca: string;
  /** 32 random bytes, base64url. */
  secret: string;
  /** Unix seconds. */
  expires: number;
}

const HOST = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;
const HEX64 = /^[0-9a-f]{64}$/;
const SECRET = /^[A-Za-z0-9_-]{43}$/;
const SECONDS = /^[1-9][0-9]{0,11}$/;

/** Why a token was refused before it was used: one line each. */
export class TokenError extends Error {
  override readonly name = "TokenError";
}

function body(t: JoinToken): string {
  return `${TOKEN_PREFIX}${TOKEN_VERSION}:${t.host}:${t.ca}:${t.secret}:${t.expires}`;
}

function check(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 8);
}

export function newSecret(): string {
  return randomBytes(32).toString("base64url");
}

export function formatToken(t: JoinToken): string {
  const b = body(t);
  return `${b}:${check(b)}`;
}

/** Parses a token; a damaged one (a character changed, a part missing) is a TokenError, never a guess. */
export function parseToken(text: string): JoinToken {
  const s = text.trim();
  if (s.length > MAX_TOKEN_LENGTH) throw new TokenError(`join token is longer than ${MAX_TOKEN_LENGTH} characters`);
  if (!s.startsWith(TOKEN_PREFIX)) throw new TokenError(`not a join token (a join token begins with ${TOKEN_PREFIX})`);
  const parts = s.slice(TOKEN_PREFIX.length).split(":");
  if (parts[0] !== TOKEN_VERSION) throw new TokenError(`join token version ${JSON.stringify(parts[0] ?? "")} is not supported (this decnet reads version ${TOKEN_VERSION})`);
  if (parts.length !== 6) throw new TokenError("join token is incomplete: copy the whole line `swarm enroll --join` printed");
  const [, host, ca, secret, expires, digits] = parts as [string, string, string, string, string, string];
  if (check(s.slice(0, s.length - digits.length - 1)) !== digits) {
    throw new TokenError("join token is damaged (its check digits do not match): copy it again, whole");
  }
  if (!HOST.test(host)) throw new TokenError("join token's host name is not a DNS label");
  if (!HEX64.test(ca)) throw new TokenError("join token's CA hash is not 64 hex digits");
  if (!SECRET.test(secret)) throw new TokenError("join token's secret is not 43 base64url characters");
  if (!SECONDS.test(expires)) throw new TokenError("join token's expiry is not a time");
  return { host, ca, secret, expires: Number(expires) };
}

export function tokenExpired(t: JoinToken, now = new Date()): boolean {
  return now.getTime() >= t.expires * 1000;
}

/** Constant-time comparison of two secrets. */
export function secretsEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
