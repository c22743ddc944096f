/**
 * The master's trust dir (DESIGN §11): create the root and a first signing
 * key, and write each new version of trust.json — add or revoke a signer,
 * set the floor, rotate the root — signed by the root key, wherever it lives.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { ALG, fingerprint, publicKeyB64 } from "../protocol/ed25519.ts";
import { compareSemver, isSemver } from "../protocol/semver.ts";
import { TRUST_MAX_BYTES, type TrustBody, type TrustDocument, certifySigner, readTrustDocument, serializeTrust, signTrustDocument } from "../protocol/trust.ts";
import { writeFileAtomic } from "../lib/atomic.ts";
import { DecnetError, usageError } from "../lib/errors.ts";
import { ensurePrivateDir, homePaths, type TrustPaths, trustPaths } from "../lib/paths.ts";
import { type LoadedKey, newKeyPair, readKeyFile, writeKeyFile } from "./trust-keys.ts";

export const DEFAULT_SIGNER_DAYS = 365;
/** Printed after every change: workers only learn of it when it is pushed. */
export const PUSH_HINT = "workers take it with `decnet swarm trust push --all`";

export interface TrustDirOptions {
  /** The trust dir (default ~/.decnet/trust). */
  dir?: string;
  now?: Date;
}

export interface RootKeyOptions extends TrustDirOptions {
  /** The root key file, when it is not in the trust dir (it should not be). */
  rootKey?: string;
}

export interface TrustChange {
  paths: TrustPaths;
  doc: TrustDocument;
}

const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, "Z");

function pathsOf(o: TrustDirOptions): TrustPaths {
  return o.dir ? trustPaths(o.dir) : homePaths().trust;
}

function expiryIn(days: number | undefined, now: Date): string {
  const d = days ?? DEFAULT_SIGNER_DAYS;
  if (!Number.isInteger(d) || d < 1 || d > 3650) throw usageError(`--days ${days} is not a whole number of days from 1 to 3650`);
  return iso(new Date(now.getTime() + d * 86_400_000));
}

/** Reads and checks trust.json; a missing or broken one is named with what to do. */
export function loadTrust(paths: TrustPaths, dirFlag: "--dir" | "--trust-dir" = "--dir"): TrustDocument {
  if (!existsSync(paths.doc)) {
    throw new DecnetError("failed", `no trust document at ${paths.doc}`, { hint: `run \`decnet trust init\` to create one, or pass ${dirFlag} DIR where it lives` });
  }
  const size = statSync(paths.doc).size;
  const r = size > TRUST_MAX_BYTES ? { ok: false as const, message: `it is ${size} bytes, more than the ${TRUST_MAX_BYTES} allowed` } : readTrustDocument(readFileSync(paths.doc));
  if (!r.ok) {
    throw new DecnetError("failed", `${paths.doc} is not a usable trust document: ${r.message}`, {
      hint: "restore it from a backup or from a worker's copy; `decnet trust init --dir NEW` starts a new root, which workers holding this one will refuse",
    });
  }
  return r.value;
}

/** The root key to sign with: --root-key, else root.key in the trust dir; it must be a root of `doc`. */
function rootKeyFor(paths: TrustPaths, doc: TrustDocument, file?: string): LoadedKey {
  if (!file && !existsSync(paths.rootKey)) throw usageError("the root key is offline: pass --root-key FILE");
  const k = readKeyFile(file ?? paths.rootKey, "root key");
  if (!doc.signed.roots.some((r) => r.id === k.id)) {
    throw new DecnetError("failed", `${k.file} (key ${k.id}) is not a root of ${paths.doc} (roots: ${doc.signed.roots.map((r) => r.id).join(", ")})`, {
      hint: "pass the current root key with --root-key FILE",
    });
  }
  return k;
}

/** Writes trust.json, and a copy under history/ first (a copy without trust.json is harmless). */
function writeDoc(paths: TrustPaths, doc: TrustDocument): void {
  const text = serializeTrust(doc);
  ensurePrivateDir(paths.historyDir);
  writeFileAtomic(paths.history(doc.signed.version), text, 0o644);
  writeFileAtomic(paths.doc, text, 0o644);
}

/** Writes the next version of the document, signed by `signers`. */
function writeNext(paths: TrustPaths, doc: TrustDocument, change: Partial<TrustBody>, signers: LoadedKey[], now: Date): TrustDocument {
  const body: TrustBody = { ...doc.signed, ...change, version: doc.signed.version + 1, issued_at: iso(now) };
  const next = signTrustDocument(body, signers);
  writeDoc(paths, next);
  return next;
}

export interface InitResult extends TrustChange {
  root: { id: string; fingerprint: string };
  signer: { id: string; expires: string };
}

/** `trust init`: root.key and signing.key (0600) in a 0700 dir, and trust.json version 1. */
export function initTrust(o: TrustDirOptions & { days?: number }): InitResult {
  const paths = pathsOf(o);
  const now = o.now ?? new Date();
  const expires = expiryIn(o.days, now);
  const taken = [paths.doc, paths.rootKey, paths.signingKey].filter((f) => existsSync(f));
  if (taken.length) {
    throw usageError(`${taken[0]} already exists`, "a second root would split the fleet: see `decnet trust show`, or pass --dir DIR for a new trust dir");
  }
  ensurePrivateDir(paths.dir);
  const root = writeKeyFile(paths.rootKey, newKeyPair());
  const signing = writeKeyFile(paths.signingKey, newKeyPair());
  const body: TrustBody = {
    version: 1,
    issued_at: iso(now),
    roots: [{ id: root.id, alg: ALG, public: root.public }],
    signers: [certifySigner({ public: signing.public, expires }, root)],
    revoked: [],
    floor: null,
  };
  const doc = signTrustDocument(body, [root]);
  writeDoc(paths, doc);
  return { paths, doc, root: { id: root.id, fingerprint: fingerprint(root.public) }, signer: { id: signing.id, expires } };
}

export interface TrustView {
  file: string;
  version: number;
  issued_at: string;
  roots: { id: string; fingerprint: string }[];
  signers: { id: string; expires: string; expired: boolean; certified_by: string }[];
  revoked: string[];
  floor: string | null;
}

/** `trust show`: the document as facts. */
export function showTrust(o: TrustDirOptions): TrustView {
  const paths = pathsOf(o);
  const now = (o.now ?? new Date()).getTime();
  const s = loadTrust(paths).signed;
  return {
    file: paths.doc,
    version: s.version,
    issued_at: s.issued_at,
    roots: s.roots.map((r) => ({ id: r.id, fingerprint: fingerprint(r.public) })),
    signers: s.signers.map((x) => ({ id: x.id, expires: x.expires, expired: Date.parse(x.expires) <= now, certified_by: x.root })),
    revoked: s.revoked,
    floor: s.floor,
  };
}

/** `trust add-signer`: a new signing key (0600, never over an existing file), certified by the root. */
export function addSigner(o: RootKeyOptions & { out?: string; days?: number }): TrustChange & { signer: { id: string; expires: string; file: string } } {
  const paths = pathsOf(o);
  const now = o.now ?? new Date();
  const expires = expiryIn(o.days, now);
  const doc = loadTrust(paths);
  const root = rootKeyFor(paths, doc, o.rootKey);
  const key = newKeyPair();
  const cert = certifySigner({ public: publicKeyB64(key), expires }, root);
  const file = o.out ?? paths.signerKey(cert.id);
  // The key first: a crash before the document leaves an uncertified key, harmless.
  writeKeyFile(file, key);
  const next = writeNext(paths, doc, { signers: [...doc.signed.signers, cert] }, [root], now);
  return { paths, doc: next, signer: { id: cert.id, expires, file } };
}

/** `trust revoke-signer KEYID`: the key leaves `signers` and joins `revoked`, for good. */
export function revokeSigner(o: RootKeyOptions & { keyId: string }): TrustChange {
  const paths = pathsOf(o);
  const doc = loadTrust(paths);
  const s = doc.signed;
  if (s.revoked.includes(o.keyId)) throw usageError(`signing key ${o.keyId} is already revoked (trust document version ${s.version})`);
  if (!s.signers.some((x) => x.id === o.keyId)) {
    throw usageError(`no signing key ${o.keyId} in ${paths.doc}`, `its signing keys: ${s.signers.map((x) => x.id).join(", ") || "none"}`);
  }
  const root = rootKeyFor(paths, doc, o.rootKey);
  return { paths, doc: writeNext(paths, doc, { signers: s.signers.filter((x) => x.id !== o.keyId), revoked: [...s.revoked, o.keyId] }, [root], o.now ?? new Date()) };
}

/** `trust floor VERSION`: the lowest version any worker may run (or roll back to). */
export function setFloor(o: RootKeyOptions & { version: string }): TrustChange & { previous: string | null; lowered: boolean } {
  if (!isSemver(o.version)) throw usageError(`${JSON.stringify(o.version)} is not a semver version`, "a floor looks like 0.2.0 (versions compare as semver)");
  const paths = pathsOf(o);
  const doc = loadTrust(paths);
  const previous = doc.signed.floor;
  const root = rootKeyFor(paths, doc, o.rootKey);
  const next = writeNext(paths, doc, { floor: o.version }, [root], o.now ?? new Date());
  return { paths, doc: next, previous, lowered: previous !== null && compareSemver(o.version, previous) === -1 };
}

/**
 * `trust rotate-root --new-root-out FILE`: a new root replaces the old. The
 * document lists only the new root, re-certifies every signing key with it,
 * and is signed by both: the old signature is what workers check, the new
 * one proves the new key is held. Releases signed before must be re-signed.
 */
export function rotateRoot(o: RootKeyOptions & { newRootOut: string }): TrustChange & { oldRoot: string; newRoot: { id: string; fingerprint: string; file: string } } {
  const paths = pathsOf(o);
  const now = o.now ?? new Date();
  const doc = loadTrust(paths);
  const old = rootKeyFor(paths, doc, o.rootKey);
  const fresh = writeKeyFile(o.newRootOut, newKeyPair());
  const signers = doc.signed.signers.map((x) => certifySigner({ public: x.public, expires: x.expires }, fresh));
  const next = writeNext(paths, doc, { roots: [{ id: fresh.id, alg: ALG, public: fresh.public }], signers }, [old, fresh], now);
  return { paths, doc: next, oldRoot: old.id, newRoot: { id: fresh.id, fingerprint: fingerprint(fresh.public), file: fresh.file } };
}

/** A version from history/, checked like trust.json. */
function historyDoc(paths: TrustPaths, version: number): TrustDocument {
  const file = paths.history(version);
  if (!existsSync(file)) throw new DecnetError("failed", `${file} is missing: the trust history is needed to walk a worker through a root rotation`);
  const r = readTrustDocument(readFileSync(file));
  if (!r.ok) throw new DecnetError("failed", `${file} is not a usable trust document: ${r.message}`);
  return r.value;
}

const rootIds = (d: TrustDocument) => d.signed.roots.map((r) => r.id).sort().join(",");

/**
 * The documents to send, in order, to a worker holding version `held`: each
 * root rotation after it (a worker only takes a document a root it holds
 * signed), then the latest. For `swarm trust push`.
 */
export function trustPushChain(o: TrustDirOptions & { held: number | null }): TrustDocument[] {
  const paths = pathsOf(o);
  const latest = loadTrust(paths);
  const top = latest.signed.version;
  if (o.held === null || o.held >= top) return [latest];
  const chain: TrustDocument[] = [];
  let prev = historyDoc(paths, o.held);
  for (let v = o.held + 1; v < top; v++) {
    const d = historyDoc(paths, v);
    if (rootIds(d) !== rootIds(prev)) chain.push(d);
    prev = d;
  }
  return [...chain, latest];
}
