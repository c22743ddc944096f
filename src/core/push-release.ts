/**
 * A release prepared for one push (DESIGN §17): its own dir under
 * ~/.decnet/cache/push, the files copied there and hashed once (manifest and
 * block digests in the same read), and the .tar.gz made only when a host
 * needs a full push, once. A delta push never gzips the 110 MB release.
 */
import { chmodSync, closeSync, copyFileSync, openSync, writeSync, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Manifest, manifestFor, parseManifest } from "../protocol/manifest.ts";
import { parseSignature, SIGNATURE_FILE, SIGNATURE_MAX_BYTES } from "../protocol/signature.ts";
import { DecnetError } from "../lib/errors.ts";
import { ensurePrivateDir, homePaths, RELEASE_MANIFEST } from "../lib/paths.ts";
import { readTarball, writeTarball } from "../lib/tarball.ts";
import { type HashedFile, hashFile } from "./plan-input.ts";

/** The packed release's name inside its dir. */
const TARBALL = "release.tar.gz";
/** Names the dir keeps for itself: a manifest file may not take them. */
const RESERVED = new Set([RELEASE_MANIFEST, SIGNATURE_FILE, TARBALL]);
/** Push dirs older than this are leftovers of a master that died mid-push. */
const LEFTOVER_MS = 3600_000;

export class PushRelease {
  private packed: Promise<string> | null;

  constructor(
    /** The release's own dir (moved whole when a rollout keeps it). */
    readonly dir: string,
    readonly manifest: Manifest,
    /** signature.json's text when the release is signed. */
    readonly signature: string | null,
    /** Where it came from, for the operator: "artifact FILE", "self", "build of DIR". */
    readonly source: string,
    /** Each manifest file's size, sha256 and block digests, from the read that made (or checked) the manifest. */
    readonly hashed: Record<string, HashedFile>,
    tarball: string | null = null,
  ) {
    this.packed = tarball ? Promise.resolve(tarball) : null;
  }

  /** False for a tarball taken for a --full push: its files were never unpacked (no delta, nothing to remember). */
  get unpacked(): boolean {
    return this.manifest.files.every((f) => this.hashed[f.path] !== undefined);
  }

  /** Unpacked bytes: what the release is, whatever travels. */
  get size(): number {
    return this.manifest.files.reduce((s, f) => s + f.size, 0);
  }

  /** Each manifest file's path on this machine. */
  get local(): Record<string, string> {
    return Object.fromEntries(this.manifest.files.map((f) => [f.path, join(this.dir, f.path)]));
  }

  /** The signing key id, or null when unsigned. */
  get signer(): string | null {
    if (!this.signature) return null;
    const p = parseSignature(this.signature);
    return p.ok ? p.value.signer.id : null;
  }

  /** The release .tar.gz, packed on the first call only (every full push shares it). */
  tarball(): Promise<string> {
    this.packed ??= (async () => {
      const out = join(this.dir, TARBALL);
      if (existsSync(out)) return out;
      const tmp = join(this.dir, `.${TARBALL}.tmp`);
      const names = [RELEASE_MANIFEST, ...(this.signature ? [SIGNATURE_FILE] : []), ...this.manifest.files.map((f) => f.path)];
      await writeTarball(tmp, this.dir, names);
      renameSync(tmp, out);
      return out;
    })();
    this.packed.catch(() => (this.packed = null));
    return this.packed;
  }

  /** Moves the whole dir to `dir` (a rollout keeping it), and answers the release there. */
  moveTo(dir: string): PushRelease {
    rmSync(dir, { recursive: true, force: true });
    renameSync(this.dir, dir);
    const packed = existsSync(join(dir, TARBALL)) ? join(dir, TARBALL) : null;
    return new PushRelease(dir, this.manifest, this.signature, this.source, this.hashed, packed);
  }

  drop(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A new push dir; leftovers older than an hour cleared first. */
function newPushDir(): string {
  const root = ensurePrivateDir(homePaths().pushCache);
  const old = Date.now() - LEFTOVER_MS;
  for (const n of readdirSync(root)) {
    if (!n.startsWith("push-")) continue;
    try {
      if (statSync(join(root, n)).mtimeMs < old) rmSync(join(root, n), { recursive: true, force: true });
    } catch {
      // another master's cleanup got there first
    }
  }
  return mkdtempSync(join(root, "push-"));
}

function checkPaths(m: Manifest): void {
  for (const f of m.files) {
    if (RESERVED.has(f.path) || f.path.includes("/")) throw new DecnetError("failed", `release ${m.id.slice(0, 12)} has a file named ${f.path}, which a push cannot hold`);
  }
}

function writeMeta(dir: string, m: Manifest, signature: string | null): void {
  writeFileSync(join(dir, RELEASE_MANIFEST), `${JSON.stringify(m, null, 2)}\n`, { mode: 0o600 });
  if (signature) writeFileSync(join(dir, SIGNATURE_FILE), signature, { mode: 0o600 });
}

export interface FromExecutable {
  file: string;
  version: string;
  info: { git?: { sha: string; dirty: boolean }; built_at?: string | null; target: string };
  source: string;
  sign?: (m: Manifest) => string;
  /** Takes `file` (a build the master made) instead of copying it. */
  move?: boolean;
}

/** An executable as a release: copied (or moved) into a push dir, hashed once, signed when asked. */
export function releaseFromExecutable(o: FromExecutable): PushRelease {
  const dir = newPushDir();
  try {
    const exe = join(dir, "decnet");
    if (o.move) renameSync(o.file, exe);
    else copyFileSync(o.file, exe);
    chmodSync(exe, 0o755);
    // Hashed after the copy: what is hashed is what will be sent, whatever happens to the operator's file.
    const h = hashFile(exe);
    const manifest = manifestFor({ version: o.version, git: o.info.git, built_at: o.info.built_at, target: o.info.target }, [{ path: "decnet", mode: "0755", size: h.size, sha256: h.sha256 }]);
    const signature = o.sign ? o.sign(manifest) : null;
    writeMeta(dir, manifest, signature);
    return new PushRelease(dir, manifest, signature, o.source, { decnet: h });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/**
 * A release tarball as a push: copied in as it is (a full push sends these
 * very bytes, signature and all), its files unpacked beside it and hashed
 * for a delta; with `unpack` false (a --full push) only its manifest and
 * signature are read, as before push dirs: a full push costs no more.
 */
export async function releaseFromTarball(file: string, source: string, unpack = true): Promise<PushRelease> {
  const dir = newPushDir();
  try {
    const packed = join(dir, TARBALL);
    copyFileSync(file, packed);
    let manifest: Manifest | null = null;
    let signature: string | null = null;
    const texts: Record<string, Uint8Array[]> = {};
    const fds: number[] = [];
    const STOP = new Error("manifest and signature read");
    const wanted = () => new Set(manifest?.files.map((f) => f.path) ?? []);
    await readTarball(Bun.file(packed).stream(), (e) => {
      if (e.type !== "File" && e.type !== "OldFile") throw new DecnetError("failed", `${file}: ${e.path} is not a regular file`);
      if (e.path === RELEASE_MANIFEST || e.path === SIGNATURE_FILE) {
        if (e.size > (e.path === SIGNATURE_FILE ? SIGNATURE_MAX_BYTES : 1024 * 1024)) throw new DecnetError("failed", `${file}: its ${e.path} is too large`);
        const chunks: Uint8Array[] = (texts[e.path] = []);
        e.onData((c) => chunks.push(c));
        e.onEnd(() => {
          const text = Buffer.concat(chunks).toString("utf8");
          if (e.path === SIGNATURE_FILE) return void (signature = text);
          const r = parseManifest(text);
          if (!r.ok) throw new DecnetError("failed", `${file}: ${r.problem}`);
          manifest = r.manifest;
          checkPaths(manifest);
        });
        return;
      }
      if (!manifest) throw new DecnetError("failed", `${file}: the first entry is ${e.path}, not ${RELEASE_MANIFEST}`);
      if (!wanted().has(e.path)) throw new DecnetError("failed", `${file}: ${e.path} is not in its manifest`);
      if (!unpack) throw STOP;
      const fd = openSync(join(dir, e.path), "wx", 0o600);
      fds.push(fd);
      e.onData((c) => void writeSync(fd, c));
      e.onEnd(() => closeSync(fds.splice(fds.indexOf(fd), 1)[0]!));
    })
      .catch((e: unknown) => {
        if (e !== STOP) throw e;
      })
      .finally(() => {
        for (const fd of fds) closeSync(fd);
      });
    const m = manifest as Manifest | null;
    if (!m) throw new DecnetError("failed", `${file} has no ${RELEASE_MANIFEST}`);
    const hashed: Record<string, HashedFile> = {};
    for (const f of unpack ? m.files : []) {
      const p = join(dir, f.path);
      if (!existsSync(p)) throw new DecnetError("failed", `${file} lacks ${f.path}, which its manifest lists`);
      chmodSync(p, Number.parseInt(f.mode, 8));
      const h = (hashed[f.path] = hashFile(p));
      if (h.size !== f.size || h.sha256 !== f.sha256) throw new DecnetError("failed", `${file}: ${f.path} does not match its manifest (size or sha256)`);
    }
    if (signature !== null && !parseSignature(signature).ok) throw new DecnetError("failed", `${file}: its ${SIGNATURE_FILE} does not parse`, { hint: "sign it again with `decnet release sign`" });
    writeMeta(dir, m, signature);
    return new PushRelease(dir, m, signature, source, hashed, packed);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e instanceof DecnetError ? e : new DecnetError("failed", `${file} is not a release tarball: ${(e as Error).message}`);
  }
}

/** A push dir kept on disk (a rollout's), read back and its files hashed again; null when it is not there. */
export function openPushRelease(dir: string, source: string): PushRelease | null {
  let text: string;
  try {
    text = readFileSync(join(dir, RELEASE_MANIFEST), "utf8");
  } catch {
    return null;
  }
  const r = parseManifest(text);
  if (!r.ok) throw new DecnetError("failed", `${dir}: ${r.problem}`);
  const signature = existsSync(join(dir, SIGNATURE_FILE)) ? readFileSync(join(dir, SIGNATURE_FILE), "utf8") : null;
  const packed = existsSync(join(dir, TARBALL)) ? join(dir, TARBALL) : null;
  const hashed: Record<string, HashedFile> = {};
  for (const f of r.manifest.files) {
    // A tarball kept for a --full push alone was never unpacked.
    if (packed && !existsSync(join(dir, f.path))) continue;
    const h = (hashed[f.path] = hashFile(join(dir, f.path)));
    if (h.size !== f.size || h.sha256 !== f.sha256) throw new DecnetError("failed", `${dir}: ${f.path} is no longer the release's (size or sha256)`);
  }
  return new PushRelease(dir, r.manifest, signature, source, hashed, packed);
}

/** Makes a dir for a build the master runs (removed by the caller). */
export function buildDir(): string {
  return mkdtempSync(join(ensurePrivateDir(homePaths().pushCache), "push-build-"));
}
