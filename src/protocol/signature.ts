/**
 * signature.json, a release tarball's second entry: a signing key's signature
 * over the release id, version and target, with that key's certification by a
 * root; and checkRelease, the updater's decision on a release (DESIGN §11).
 */
import type { KeyObject } from "node:crypto";
import { z } from "zod";
import { ReleaseId } from "./manifest.ts";
import { SignatureB64, signText, verifyText } from "./ed25519.ts";
import { compareSemver } from "./semver.ts";
import { type Parsed, SemverString, SignerCert, type TrustDocument, certifiedBy, parseBounded } from "./trust.ts";

export const SIGNATURE_FILE = "signature.json";
export const SIGNATURE_MAX_BYTES = 4 * 1024;

/** A target is written into signed text, so it may not hold spaces or newlines. */
export const SignedTarget = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, "a target like linux-x64");

export const SignedRelease = z.strictObject({
  id: ReleaseId,
  version: SemverString,
  target: SignedTarget,
});
export type SignedRelease = z.infer<typeof SignedRelease>;

export const ReleaseSignature = z.strictObject({
  format: z.literal(1),
  release: SignedRelease,
  /** The signing key and its root's certification, carried whole (see README). */
  signer: SignerCert,
  sig: SignatureB64,
});
export type ReleaseSignature = z.infer<typeof ReleaseSignature>;

/** The bytes a signing key signs for a release. */
export function releaseSignedText(r: SignedRelease, signerId: string): string {
  return ["decnet-release/1", `id ${r.id}`, `version ${r.version}`, `target ${r.target}`, `signer ${signerId}`, ""].join("\n");
}

export function parseSignature(input: string | Uint8Array): Parsed<ReleaseSignature> {
  return parseBounded(input, ReleaseSignature, SIGNATURE_FILE, SIGNATURE_MAX_BYTES);
}

/** Signs a release; `cert` is the signing key's entry in the trust document. */
export function signRelease(release: SignedRelease, cert: SignerCert, key: KeyObject): ReleaseSignature {
  return { format: 1, release, signer: cert, sig: signText(key, releaseSignedText(release, cert.id)) };
}

export function serializeSignature(s: ReleaseSignature): string {
  return `${JSON.stringify(s, null, 2)}\n`;
}

export type ReleaseRefusal = "unsigned" | "bad_signature" | "untrusted_signer" | "below_floor" | "downgrade";

export type ReleaseCheck =
  | { ok: true; signer: string | null }
  | { ok: false; code: ReleaseRefusal; message: string };

export interface ReleaseFacts {
  /** Recomputed from the extracted files, never taken from the manifest's claim. */
  id: string;
  version: string;
  target: string;
}

export interface CheckOptions {
  /** The version of the release running now, or null on a first install. */
  current: string | null;
  allowDowngrade: boolean;
  now: Date;
}

const short = (id: string) => id.slice(0, 12);
const SIGN_HINT = "sign it with `decnet release sign FILE` (or `release pack|build --sign`) and push again";

/**
 * May this release be installed? `signature` is signature.json's bytes as
 * extracted (null when the release has none). With no trust document the
 * answer is yes, as in v1.
 */
export function checkRelease(trust: TrustDocument | null, signature: string | Uint8Array | null, release: ReleaseFacts, o: CheckOptions): ReleaseCheck {
  if (!trust) return { ok: true, signer: null };
  const t = trust.signed;
  const what = `release ${release.version} ${short(release.id)}`;
  if (signature === null) return { ok: false, code: "unsigned", message: `${what} is not signed and this worker requires signed releases: ${SIGN_HINT}` };
  const p = parseSignature(signature);
  if (!p.ok) return { ok: false, code: "bad_signature", message: `${what}: ${p.message}: ${SIGN_HINT}` };
  const s = p.value;
  const r = s.release;
  if (r.id !== release.id || r.version !== release.version || r.target !== release.target) {
    return {
      ok: false,
      code: "bad_signature",
      message: `${what} (${release.target}): its ${SIGNATURE_FILE} was made for another release (${r.version} ${short(r.id)}, ${r.target}): ${SIGN_HINT}`,
    };
  }
  if (!verifyText(s.signer.public, releaseSignedText(r, s.signer.id), s.sig)) {
    return { ok: false, code: "bad_signature", message: `${what}: the signature does not verify with signing key ${s.signer.id}: ${SIGN_HINT}` };
  }
  const signer = `signing key ${s.signer.id}`;
  const certify = "certify a signing key with `decnet trust add-signer` (and push the trust document), then re-sign";
  if (t.revoked.includes(s.signer.id)) {
    return { ok: false, code: "untrusted_signer", message: `${what}: ${signer} was revoked (trust document version ${t.version}): ${certify}` };
  }
  if (!certifiedBy(s.signer, t.roots)) {
    return { ok: false, code: "untrusted_signer", message: `${what}: ${signer} is not certified by a root this worker trusts (${t.roots.map((x) => x.id).join(", ")}): ${certify}` };
  }
  if (Date.parse(s.signer.expires) <= o.now.getTime()) {
    return { ok: false, code: "untrusted_signer", message: `${what}: ${signer} expired at ${s.signer.expires}: ${certify}` };
  }
  if (t.floor && compareSemver(release.version, t.floor)! < 0) {
    return {
      ok: false,
      code: "below_floor",
      message: `${what} is below the fleet's floor ${t.floor} (trust document version ${t.version}): push a release ≥ ${t.floor}; --allow-downgrade does not lift the floor`,
    };
  }
  // A current version that is not semver was never signed: leaving it is no downgrade.
  if (o.current !== null && !o.allowDowngrade && compareSemver(release.version, o.current) === -1) {
    return { ok: false, code: "downgrade", message: `${what} is older than the running ${o.current}: push a newer release, or pass \`swarm update --allow-downgrade\` if you mean it` };
  }
  return { ok: true, signer: s.signer.id };
}
