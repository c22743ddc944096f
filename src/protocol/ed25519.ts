/**
 * Ed25519 keys as the trust document writes them: raw 32-byte public keys
 * and 64-byte signatures in strict base64, key ids and fingerprints, and a
 * verify that answers false, never throws, on any malformed input.
 */
import { createHash, createPublicKey, type KeyObject, sign, verify } from "node:crypto";
import { z } from "zod";

/** The one algorithm; a document naming another is refused, not guessed at. */
export const ALG = "ed25519";

// Strict base64 of exactly 32 and 64 bytes (with padding); re-encoding must
// give the same text, so one key has one spelling.
const B64_32 = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
const B64_64 = /^[A-Za-z0-9+/]{85}[AQgw]==$/;

export const PublicKeyB64 = z.string().regex(B64_32, "an Ed25519 public key: 32 bytes in base64");
export const SignatureB64 = z.string().regex(B64_64, "an Ed25519 signature: 64 bytes in base64");
/** First 16 hex digits of the sha256 of the raw public key. */
export const KeyId = z.string().regex(/^[0-9a-f]{16}$/, "a key id: 16 hex digits");

// An Ed25519 SubjectPublicKeyInfo is this fixed prefix plus the 32 raw bytes.
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

/** The full sha256 of the raw public key, hex: what `trust show` and /health print. */
export function fingerprint(publicB64: string): string {
  return createHash("sha256").update(Buffer.from(publicB64, "base64")).digest("hex");
}

export function keyId(publicB64: string): string {
  return fingerprint(publicB64).slice(0, 16);
}

/** The raw public key of a private (or public) Ed25519 KeyObject, in base64. */
export function publicKeyB64(key: KeyObject): string {
  const spki = (key.type === "private" ? createPublicKey(key) : key).export({ format: "der", type: "spki" });
  return Buffer.from(spki.subarray(SPKI_PREFIX.length)).toString("base64");
}

export function signText(privateKey: KeyObject, text: string): string {
  return sign(null, Buffer.from(text, "utf8"), privateKey).toString("base64");
}

/** True only for a well-formed key and signature that verify over `text`. */
export function verifyText(publicB64: string, text: string, sigB64: string): boolean {
  if (!B64_32.test(publicB64) || !B64_64.test(sigB64)) return false;
  try {
    const key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, Buffer.from(publicB64, "base64")]), format: "der", type: "spki" });
    return verify(null, Buffer.from(text, "utf8"), key, Buffer.from(sigB64, "base64"));
  } catch {
    // A 32-byte string that is not a curve point lands here.
    return false;
  }
}
