/**
 * The trust document (DESIGN §11): root keys, the signing keys they certify,
 * revoked key ids and the version floor, versioned and signed by the roots.
 * What is signed is a canonical text built from the parsed fields, never the
 * JSON bytes, so re-serialising a document cannot change what was signed.
 */
import type { KeyObject } from "node:crypto";
import { z } from "zod";
import { ALG, KeyId, PublicKeyB64, SignatureB64, keyId, signText, verifyText } from "./ed25519.ts";
import { SEMVER_MAX_LENGTH, compareSemver, isSemver } from "./semver.ts";

export const TRUST_MAX_BYTES = 64 * 1024;
export const TRUST_MAX_ROOTS = 8;
export const TRUST_MAX_SIGNERS = 32;
export const TRUST_MAX_REVOKED = 256;

/** `2026-11-28T04:00:00Z`: one spelling per instant, so it can be signed as text. */
export const Timestamp = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/, "a UTC time like 2026-11-28T04:00:00Z")
  .refine((s) => {
    const t = Date.parse(s);
    return !Number.isNaN(t) && new Date(t).toISOString().replace(".000Z", "Z") === s;
  }, "not a real date");

export const SemverString = z.string().max(SEMVER_MAX_LENGTH).refine(isSemver, "a semver version like 0.1.0 or 0.1.0-next");

const Alg = z.literal(ALG, { error: (i) => `unknown algorithm ${JSON.stringify(i.input)} (only ${ALG})` });

export const RootKey = z.strictObject({ id: KeyId, alg: Alg, public: PublicKeyB64 });
export type RootKey = z.infer<typeof RootKey>;

/**
 * A signing key as a root certified it. The same object travels inside each
 * signature.json, so a worker can check the chain with nothing but its roots.
 */
export const SignerCert = z.strictObject({
  id: KeyId,
  alg: Alg,
  public: PublicKeyB64,
  expires: Timestamp,
  /** The id of the root that made `certification`. */
  root: KeyId,
  certification: SignatureB64,
});
export type SignerCert = z.infer<typeof SignerCert>;

const unique = (ids: string[]) => new Set(ids).size === ids.length;

export const TrustBody = z
  .strictObject({
    version: z.number().int().min(1).max(2 ** 31),
    issued_at: Timestamp,
    roots: z.array(RootKey).min(1).max(TRUST_MAX_ROOTS),
    signers: z.array(SignerCert).max(TRUST_MAX_SIGNERS),
    revoked: z.array(KeyId).max(TRUST_MAX_REVOKED),
    floor: SemverString.nullable(),
  })
  .refine((b) => b.roots.every((r) => keyId(r.public) === r.id) && b.signers.every((s) => keyId(s.public) === s.id), "a key id is not the sha256 of its key")
  .refine((b) => unique(b.roots.map((r) => r.id)) && unique(b.signers.map((s) => s.id)) && unique(b.revoked), "duplicate key ids")
  .refine((b) => b.signers.every((s) => !b.revoked.includes(s.id)), "a signer is also revoked");
export type TrustBody = z.infer<typeof TrustBody>;

export const TrustSignature = z.strictObject({ root: KeyId, sig: SignatureB64 });

export const TrustDocument = z.strictObject({
  format: z.literal(1),
  signed: TrustBody,
  signatures: z.array(TrustSignature).min(1).max(TRUST_MAX_ROOTS),
});
export type TrustDocument = z.infer<typeof TrustDocument>;

const byId = <T extends { id: string }>(xs: T[]) => [...xs].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

/**
 * The bytes a root signs. Every field is restricted to characters without
 * spaces or newlines, and lists are sorted, so each document has exactly one
 * text; the first line separates it from every other kind of signed text.
 */
export function trustSignedText(b: TrustBody): string {
  return [
    "decnet-trust/1",
    `version ${b.version}`,
    `issued_at ${b.issued_at}`,
    ...byId(b.roots).map((r) => `root ${r.id} ${r.alg} ${r.public}`),
    ...byId(b.signers).map((s) => `signer ${s.id} ${s.alg} ${s.public} ${s.expires} ${s.root} ${s.certification}`),
    ...[...b.revoked].sort().map((id) => `revoked ${id}`),
    `floor ${b.floor ?? "-"}`,
    "",
  ].join("\n");
}

/** The bytes a root signs to certify a signing key. */
export function certificationText(s: Pick<SignerCert, "id" | "alg" | "public" | "expires">): string {
  return ["decnet-signer/1", `id ${s.id}`, `alg ${s.alg}`, `public ${s.public}`, `expires ${s.expires}`, ""].join("\n");
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; code: "bad_request"; message: string };

/**
 * JSON text (or bytes) → a schema-checked value; size bounded before parsing,
 * and nothing thrown: a hostile body becomes a typed error.
 */
export function parseBounded<T>(input: string | Uint8Array, schema: z.ZodType<T>, what: string, maxBytes: number): Parsed<T> {
  try {
    const size = typeof input === "string" ? Buffer.byteLength(input) : input.byteLength;
    if (size > maxBytes) return { ok: false, code: "bad_request", message: `${what} is ${size} bytes, more than the ${maxBytes} allowed` };
    const text = typeof input === "string" ? input : new TextDecoder("utf-8", { fatal: true }).decode(input);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return { ok: false, code: "bad_request", message: `${what} is not JSON` };
    }
    const r = schema.safeParse(json);
    if (!r.success) {
      const i = r.error.issues[0];
      const at = i && i.path.length ? `${i.path.join(".")}: ` : "";
      return { ok: false, code: "bad_request", message: `${what} is not valid: ${at}${i?.message ?? "wrong shape"}` };
    }
    return { ok: true, value: r.data };
  } catch (e) {
    return { ok: false, code: "bad_request", message: `${what} could not be read: ${e instanceof Error ? e.message : String(e)}` };
  }
}

/** True when `cert` was certified by one of `roots` and the certification verifies. */
export function certifiedBy(cert: SignerCert, roots: RootKey[]): boolean {
  const root = roots.find((r) => r.id === cert.root);
  return !!root && verifyText(root.public, certificationText(cert), cert.certification);
}

/** The ids of `roots` that signed the document with a valid signature. */
export function signedByRoots(doc: TrustDocument, roots: RootKey[]): string[] {
  const text = trustSignedText(doc.signed);
  return roots.filter((r) => doc.signatures.some((s) => s.root === r.id && verifyText(r.public, text, s.sig))).map((r) => r.id);
}

/**
 * Parses a trust document and checks it is whole: signed by at least one of
 * its own roots, and every signer certified by one of them. This is what a
 * corrupt or hand-edited trust.json fails.
 */
export function readTrustDocument(input: string | Uint8Array): Parsed<TrustDocument> {
  const p = parseBounded(input, TrustDocument, "the trust document", TRUST_MAX_BYTES);
  if (!p.ok) return p;
  const problem = wholeProblem(p.value);
  return problem ? { ok: false, code: "bad_request", message: problem } : p;
}

/** Why a schema-valid document is not whole, or null when it is. */
function wholeProblem(doc: TrustDocument): string | null {
  if (signedByRoots(doc, doc.signed.roots).length === 0) {
    return "the trust document is not validly signed by any of its own roots (damaged or edited by hand)";
  }
  const bad = doc.signed.signers.find((s) => !certifiedBy(s, doc.signed.roots));
  return bad ? `signing key ${bad.id} in the trust document is not validly certified by one of its roots` : null;
}

/** Makes a signed document from a body and the root private keys that sign it. */
export function signTrustDocument(body: TrustBody, rootKeys: { id: string; key: KeyObject }[]): TrustDocument {
  const text = trustSignedText(body);
  return { format: 1, signed: body, signatures: rootKeys.map((k) => ({ root: k.id, sig: signText(k.key, text) })) };
}

/** A root's certification of a signing key. */
export function certifySigner(s: { public: string; expires: string }, root: { id: string; key: KeyObject }): SignerCert {
  const base = { id: keyId(s.public), alg: ALG, public: s.public, expires: s.expires } as const;
  return { ...base, root: root.id, certification: signText(root.key, certificationText(base)) };
}

/** The document as trust.json holds it and POST /trust carries it. */
export function serializeTrust(doc: TrustDocument): string {
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/** What /health reports (DESIGN §11): `{version, roots: [fingerprints], floor}`. */
export function trustSummary(doc: TrustDocument | null): { version: number; roots: string[]; floor: string | null } | null {
  if (!doc) return null;
  return { version: doc.signed.version, roots: doc.signed.roots.map((r) => r.id), floor: doc.signed.floor };
}

export type TrustUpdate =
  | { ok: true; doc: TrustDocument; first: boolean; unchanged: boolean; expiredSigners: string[] }
  | { ok: false; code: "bad_request" | "bad_signature" | "untrusted_signer" | "downgrade"; message: string };

/**
 * Whether a worker holding `held` takes `offered` (already parsed). With
 * nothing held the first document is taken as it is (it came with the
 * worker's bundle); after that only one signed by a held root with a higher
 * version. The same document again is accepted as unchanged.
 */
export function checkTrustUpdate(held: TrustDocument | null, offered: TrustDocument, now: Date): TrustUpdate {
  const expiredSigners = offered.signed.signers.filter((s) => Date.parse(s.expires) <= now.getTime()).map((s) => s.id);
  const problem = wholeProblem(offered);
  if (problem) return { ok: false, code: "bad_signature", message: `${problem}: send the trust.json that \`decnet trust\` wrote` };
  if (!held) return { ok: true, doc: offered, first: true, unchanged: false, expiredSigners };
  const h = held.signed;
  if (signedByRoots(offered, h.roots).length === 0) {
    return {
      ok: false,
      code: "untrusted_signer",
      message: `the trust document is signed by none of the roots this worker trusts (${h.roots.map((r) => r.id).join(", ")}): sign it with the current root key; a new root must be introduced with \`decnet trust rotate-root\`, which the old root signs`,
    };
  }
  const v = offered.signed.version;
  if (v === h.version && trustSignedText(offered.signed) === trustSignedText(h)) {
    return { ok: true, doc: offered, first: false, unchanged: true, expiredSigners };
  }
  if (v <= h.version) {
    return {
      ok: false,
      code: "downgrade",
      message: `trust document version ${v} is not newer than the version ${h.version} this worker holds: an older or forked document is refused and the held one stays (send the latest trust.json)`,
    };
  }
  return { ok: true, doc: offered, first: false, unchanged: false, expiredSigners };
}

export type RollbackCheck = { ok: true } | { ok: false; code: "below_floor"; message: string };

/** `/rollback` onto a release of `version`: refused only below the floor. */
export function checkRollback(trust: TrustDocument | null, version: string): RollbackCheck {
  const floor = trust?.signed.floor;
  if (!floor) return { ok: true };
  const c = compareSemver(version, floor);
  if (c === null) {
    return { ok: false, code: "below_floor", message: `the previous release's version ${JSON.stringify(version)} is not semver, so it cannot be shown to be at or above the floor ${floor}: push a release ≥ ${floor} instead` };
  }
  if (c < 0) return { ok: false, code: "below_floor", message: `the previous release (${version}) is below the fleet's floor ${floor}: push a release ≥ ${floor} instead of rolling back` };
  return { ok: true };
}
