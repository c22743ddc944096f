/**
 * Signing releases on the master: load a signing key with its certification
 * from trust.json, make signature.json for a manifest, and sign a release
 * tarball in place (signature.json as the second entry, the id unchanged).
 */
import { closeSync, existsSync, fchmodSync, mkdtempSync, openSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import type { Manifest } from "../protocol/manifest.ts";
import { isSemver } from "../protocol/semver.ts";
import { type ReleaseSignature, SIGNATURE_FILE, SIGNATURE_MAX_BYTES, SignedTarget, parseSignature, serializeSignature, signRelease } from "../protocol/signature.ts";
import type { SignerCert } from "../protocol/trust.ts";
import { DecnetError, usageError } from "../lib/errors.ts";
import { RELEASE_MANIFEST, homePaths, trustPaths } from "../lib/paths.ts";
import { type RawEntry, readTarball, writeTarball } from "../lib/tarball.ts";
import { readReleaseManifest } from "./release.ts";
import { loadTrust } from "./trust.ts";
import { type LoadedKey, readKeyFile } from "./trust-keys.ts";

export interface ReleaseSigner {
  key: LoadedKey;
  cert: SignerCert;
  /** Makes signature.json's text for a release; refuses versions that are not semver. */
  sign(m: Manifest): string;
}

/**
 * The signing key (--key, else signing.key in the trust dir) and its
 * certification from trust.json. A key the document does not certify, or
 * revoked or expired, is refused here rather than by every worker.
 */
export function loadSigner(o: { key?: string; trustDir?: string; now?: Date } = {}): ReleaseSigner {
  const paths = o.trustDir ? trustPaths(o.trustDir) : homePaths().trust;
  if (!o.key && !existsSync(paths.signingKey)) {
    throw usageError(`no signing key at ${paths.signingKey}`, "`decnet trust init` makes one; or pass --key FILE (and --trust-dir DIR for its trust.json)");
  }
  const key = readKeyFile(o.key ?? paths.signingKey, "signing key");
  const s = loadTrust(paths, "--trust-dir").signed;
  const cert = s.signers.find((c) => c.id === key.id);
  if (s.revoked.includes(key.id)) throw new DecnetError("failed", `signing key ${key.id} (${key.file}) is revoked in ${paths.doc}`, { hint: "certify a new one with `decnet trust add-signer`" });
  if (!cert) throw new DecnetError("failed", `signing key ${key.id} (${key.file}) is not certified by ${paths.doc}`, { hint: "certify it with `decnet trust add-signer`, or pass the trust dir that does with --trust-dir" });
  if (Date.parse(cert.expires) <= (o.now ?? new Date()).getTime()) {
    throw new DecnetError("failed", `signing key ${key.id} expired at ${cert.expires}`, { hint: "certify a new one with `decnet trust add-signer`" });
  }
  return {
    key,
    cert,
    sign(m) {
      if (!isSemver(m.version)) throw usageError(`release version ${JSON.stringify(m.version)} is not semver, and the floor and downgrade checks need one`, "pack it with --version 0.1.0 (or similar)");
      if (!SignedTarget.safeParse(m.target).success) throw usageError(`release target ${JSON.stringify(m.target)} cannot be signed`);
      if (m.files.some((f) => f.path === SIGNATURE_FILE)) throw usageError(`the release lists a file named ${SIGNATURE_FILE}, a name reserved for its signature`);
      return serializeSignature(signRelease({ id: m.id, version: m.version, target: m.target }, cert, key.key));
    },
  };
}

export interface SignedFile {
  file: string;
  manifest: Manifest;
  signer: string;
  /** A signature that was already there and has been replaced. */
  replaced: string | null;
  /** How much the tarball grew (or shrank, when a signature was replaced). */
  bytesAdded: number;
}

/**
 * Signs a release tarball in place: every file is checked against the
 * manifest (so the signer vouches for bytes, not a claim), then the tarball is
 * rewritten as manifest.json, signature.json, the files, and renamed over.
 */
export async function signReleaseFile(file: string, signer: ReleaseSigner): Promise<SignedFile> {
  const path = resolve(file);
  const before = statSync(path).size;
  const manifest = await readReleaseManifest(path);
  const text = signer.sign(manifest);
  const dir = mkdtempSync(join(tmpdir(), "decnet-sign-"));
  const tmp = join(dirname(path), `.${basename(path)}.sign-${process.pid}`);
  try {
    const names = await unpackVerified(path, manifest, dir);
    const replaced = names.previous ? parseSignature(names.previous) : null;
    writeFileSync(join(dir, SIGNATURE_FILE), text, { mode: 0o644 });
    await writeTarball(tmp, dir, [RELEASE_MANIFEST, SIGNATURE_FILE, ...names.files]);
    renameSync(tmp, path);
    return { file: path, manifest, signer: signer.cert.id, replaced: replaced?.ok ? replaced.value.signer.id : names.previous ? "unreadable" : null, bytesAdded: statSync(path).size - before };
  } finally {
    rmSync(dir, { recursive: true, force: true });
    try { unlinkSync(tmp); } catch {}
  }
}

/** Unpacks a release into `dir`, checking every file's size and sha256 against the manifest. */
async function unpackVerified(path: string, m: Manifest, dir: string): Promise<{ files: string[]; previous: string | null }> {
  const want = new Map(m.files.map((f) => [f.path, f]));
  const files: string[] = [];
  let previous: string | null = null;
  let n = 0;
  const bad = (msg: string) => new DecnetError("failed", `${path}: ${msg}`, { hint: "sign the tarball `decnet release pack|build` wrote" });
  // The file being written, closed here if the archive fails mid-entry.
  let fd: number | null = null;
  try {
    await readTarball(Bun.file(path).stream(), (e) => onEntry(e));
  } finally {
    if (fd !== null) closeSync(fd);
  }
  const missing = m.files.filter((f) => !files.includes(f.path));
  if (missing.length) throw bad(`${missing.map((f) => f.path).join(", ")} listed in the manifest but not in the tarball`);
  return { files, previous };

  function onEntry(e: RawEntry): void {
    n += 1;
    if (e.type !== "File" && e.type !== "OldFile") throw bad(`${e.path} is not a plain file`);
    if (e.path === RELEASE_MANIFEST) {
      if (n !== 1) throw bad(`${RELEASE_MANIFEST} is not the first entry`);
      // Copied byte for byte: the manifest is part of what the release id names.
      const chunks: Uint8Array[] = [];
      e.onData((c) => chunks.push(c));
      e.onEnd(() => writeFileSync(join(dir, RELEASE_MANIFEST), Buffer.concat(chunks), { mode: 0o644 }));
      return;
    }
    if (e.path === SIGNATURE_FILE) {
      if (e.size > SIGNATURE_MAX_BYTES) throw bad(`its ${SIGNATURE_FILE} is larger than ${SIGNATURE_MAX_BYTES} bytes`);
      const chunks: Uint8Array[] = [];
      e.onData((c) => chunks.push(c));
      e.onEnd(() => { previous = Buffer.concat(chunks).toString("utf8"); });
      return;
    }
    const f = want.get(e.path);
    if (!f || files.includes(e.path)) throw bad(`${e.path} is not listed in its manifest (or listed twice)`);
    files.push(e.path);
    const out = openSync(join(dir, e.path), "wx", 0o600);
    fd = out;
    const h = createHash("sha256");
    let size = 0;
    e.onData((c) => { h.update(c); size += c.byteLength; writeSync(out, c); });
    e.onEnd(() => {
      fchmodSync(out, parseInt(f.mode, 8));
      closeSync(out);
      fd = null;
      if (size !== f.size || h.digest("hex") !== f.sha256) throw bad(`${e.path} does not match its manifest (size or sha256)`);
    });
  }
}

/** signature.json of a release tarball (its second entry), or null when it is unsigned. */
export async function readReleaseSignature(file: string): Promise<ReleaseSignature | null> {
  let text: string | null = null;
  let n = 0;
  const STOP = new Error("stop");
  try {
    await readTarball(Bun.file(file).stream(), (e) => {
      n += 1;
      if (n === 1) return e.skip();
      if (e.path !== SIGNATURE_FILE) throw STOP;
      if (e.size > SIGNATURE_MAX_BYTES) throw new DecnetError("failed", `${file}: its ${SIGNATURE_FILE} is larger than ${SIGNATURE_MAX_BYTES} bytes`);
      const chunks: Uint8Array[] = [];
      e.onData((c) => chunks.push(c));
      e.onEnd(() => {
        text = Buffer.concat(chunks).toString("utf8");
        throw STOP;
      });
    });
  } catch (e) {
    if (e instanceof DecnetError) throw e;
    if (e !== STOP) throw new DecnetError("failed", `${file} is not a release tarball: ${(e as Error).message}`);
  }
  if (text === null) return null;
  const p = parseSignature(text);
  if (!p.ok) throw new DecnetError("failed", `${file}: ${p.message}`, { hint: "sign it again with `decnet release sign`" });
  return p.value;
}
