/**
 * Getting a release: `release pack` (any executable) and `release build` (the
 * working tree) write a .tar.gz and keep its block index in the master's
 * release cache; `obtainRelease` gives a push its release (--artifact, --self,
 * or a build of the working tree) as a PushRelease, with no tarball made.
 */
import { chmodSync, closeSync, copyFileSync, existsSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { z } from "zod";
import { type Manifest, type ManifestFile, manifestFor, parseManifest } from "../protocol/manifest.ts";
import { SIGNATURE_FILE } from "../protocol/signature.ts";
import { buildInfo } from "../lib/build-info.ts";
import { fileKind } from "../lib/elf.ts";
import { describeKind, isTarget } from "../protocol/target.ts";
import { DecnetError, usageError } from "../lib/errors.ts";
import { RELEASE_BINARY, RELEASE_MANIFEST } from "../lib/paths.ts";
import { run } from "../lib/proc.ts";
import { timeouts } from "../lib/timeouts.ts";
import { readTarball, writeTarball } from "../lib/tarball.ts";
import { type HashedFile, hashFile } from "./plan-input.ts";
import { buildDir, type PushRelease, releaseFromExecutable, releaseFromTarball } from "./push-release.ts";
import { ReleaseCache } from "./release-cache.ts";

export interface Release {
  file: string;
  manifest: Manifest;
  size: number;
  /** Where it came from, for the operator: "artifact FILE", "self", "build of DIR". */
  source: string;
}

const VersionJson = z.object({
  version: z.string(),
  git: z.object({ sha: z.string(), dirty: z.boolean() }).optional(),
  built_at: z.string().nullable().optional(),
  target: z.string().optional(),
});

export async function sha256File(path: string): Promise<string> {
  const h = new Bun.CryptoHasher("sha256");
  for await (const chunk of Bun.file(path).stream()) h.update(chunk);
  return h.digest("hex");
}

/** Asks an executable `version --json`; null when it cannot answer. */
async function askVersion(file: string): Promise<z.infer<typeof VersionJson> | null> {
  const r = await run([file, "version", "--json"], { timeoutMs: timeouts.packAsk() });
  if (r.code !== 0) return null;
  try {
    return VersionJson.parse(JSON.parse(r.stdout));
  } catch {
    return null;
  }
}

export interface PackOptions {
  file: string;
  version?: string;
  out?: string;
  /** Used when the executable cannot be asked (cross-compiled) or to override. */
  info?: { git?: { sha: string; dirty: boolean }; built_at?: string | null };
  /** Only a script needs it (an ELF executable's header names its target; a different one here is refused). */
  target?: string;
  source?: string;
  /** Makes signature.json for the manifest (core/release-sign.ts loadSigner().sign): the tarball is signed as it is written. */
  sign?: (m: Manifest) => string;
}

/**
 * The target a release of `file` is for: an ELF executable's own header says
 * it (DESIGN §16), whatever machine packs it, and a stated target that
 * disagrees is refused; a `#!` script runs anywhere, so it takes the stated
 * one, else this machine's.
 */
export function packTarget(file: string, shown: string, stated?: string): string {
  if (stated !== undefined && !isTarget(stated)) throw usageError(`--target ${stated}: not a target decnet builds`, "use linux-x64 or linux-arm64");
  const kind = fileKind(file);
  if (kind.kind === "script") return stated ?? buildInfo().target;
  if (kind.kind !== "elf") throw usageError(`${shown} is ${describeKind(kind)}, not a linux-x64 or linux-arm64 executable`, "pack the decnet executable built by `bun run build`");
  if (stated && stated !== kind.target) throw usageError(`${shown} is ${describeKind(kind)}, not ${stated}`, `drop --target, or pack a ${stated} build (bun run build --target ${stated})`);
  return kind.target;
}

/** What an executable says it is (asked unless the caller says; its target from its header), for its manifest. */
async function identify(file: string, o: { version?: string; info?: PackOptions["info"]; target?: string; shown: string }): Promise<{ version: string; info: { git?: { sha: string; dirty: boolean }; built_at?: string | null; target: string } }> {
  const target = packTarget(file, o.shown, o.target);
  const asked = o.version && o.info ? null : await askVersion(file);
  const version = o.version ?? asked?.version;
  if (!version) {
    throw new DecnetError("failed", `${o.shown} did not answer \`version --json\``, { hint: "pass --version V to pack it anyway (the worker's install check will still ask it)" });
  }
  return { version, info: { git: o.info?.git ?? asked?.git, built_at: o.info?.built_at ?? asked?.built_at, target } };
}

/**
 * Keeps the release's block index in the master's cache (core/release-cache.ts),
 * so the first push from it asks no worker for it. A cache that cannot be
 * written costs only that: the release is made all the same.
 */
function rememberIndex(id: string, files: Record<string, HashedFile>): void {
  try {
    new ReleaseCache().putIndex({ release: id, width: 32, files: Object.fromEntries(Object.entries(files).map(([p, h]) => [p, { size: h.size, digests: h.digests }])) });
  } catch (e) {
    process.stderr.write(`warning: release ${id.slice(0, 12)}: its block index was not cached (${(e as Error).message}); the first push from it will ask the worker\n`);
  }
}

export async function pack(o: PackOptions): Promise<Release> {
  const file = resolve(o.file);
  if (!existsSync(file) || !statSync(file).isFile()) throw usageError(`${o.file} is not a file`);
  const { version, info } = await identify(file, { version: o.version, info: o.info, target: o.target, shown: o.file });
  const dir = mkdtempSync(join(tmpdir(), "decnet-pack-"));
  try {
    const exe = join(dir, RELEASE_BINARY);
    copyFileSync(file, exe);
    chmodSync(exe, 0o755);
    const h = hashFile(exe);
    const files: ManifestFile[] = [{ path: RELEASE_BINARY, mode: "0755", size: h.size, sha256: h.sha256 }];
    const manifest = manifestFor({ version, git: info.git, built_at: info.built_at, target: info.target }, files);
    writeFileSync(join(dir, RELEASE_MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
    if (o.sign) writeFileSync(join(dir, SIGNATURE_FILE), o.sign(manifest));
    const out = resolve(o.out ?? `decnet-${version}-${manifest.id.slice(0, 12)}.tar.gz`);
    await writeTarball(out, dir, [RELEASE_MANIFEST, ...(o.sign ? [SIGNATURE_FILE] : []), RELEASE_BINARY]);
    rememberIndex(manifest.id, { [RELEASE_BINARY]: h });
    return { file: out, manifest, size: statSync(out).size, source: o.source ?? `artifact ${o.file}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The decnet source tree containing `from`, or null. */
export function findSourceTree(from = process.cwd()): string | null {
  for (let d = resolve(from); ; d = dirname(d)) {
    if (existsSync(join(d, "build.ts")) && existsSync(join(d, "src", "main.ts"))) return d;
    if (dirname(d) === d) return null;
  }
}

const BuildJson = z.object({ out: z.string(), version: z.string(), sha: z.string(), dirty: z.boolean(), target: z.string(), built_at: z.string() });

interface Built {
  exe: string;
  version: string;
  info: { git: { sha: string; dirty: boolean }; built_at: string };
  target: string;
  source: string;
}

/** Builds the working tree (staged, unstaged and untracked alike) into `dir`/decnet. */
async function buildExecutable(o: { target?: "linux-x64" | "linux-arm64"; cwd?: string }, dir: string): Promise<Built> {
  const root = findSourceTree(o.cwd);
  if (!root) {
    throw usageError("no decnet source tree here to build", "run from a decnet checkout, or pass --artifact FILE or --self");
  }
  const exe = join(dir, "decnet");
  const bun = Bun.which("bun");
  if (!bun) throw new DecnetError("failed", "building the working tree needs bun on PATH", { hint: "npm install -g bun, or pass --artifact/--self" });
  const r = await run([bun, join(root, "build.ts"), "--out", exe, "--json", ...(o.target ? ["--target", o.target] : [])], { timeoutMs: timeouts.build(), cwd: root });
  if (r.code !== 0) throw new DecnetError("failed", `build of ${root} failed:\n${(r.stderr || r.stdout).trim().split("\n").slice(-15).join("\n")}`);
  const b = BuildJson.parse(JSON.parse(r.stdout.trim().split("\n").pop()!));
  return { exe, version: b.version, info: { git: { sha: b.sha, dirty: b.dirty }, built_at: b.built_at }, target: b.target, source: `build of ${root}` };
}

/** Builds the working tree and packs it (`release build`). */
export async function buildRelease(o: { out?: string; target?: "linux-x64" | "linux-arm64"; cwd?: string; sign?: PackOptions["sign"] }): Promise<Release> {
  const dir = mkdtempSync(join(tmpdir(), "decnet-build-"));
  try {
    const b = await buildExecutable(o, dir);
    return await pack({ file: b.exe, version: b.version, info: b.info, target: b.target, out: o.out, source: b.source, sign: o.sign });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** True when `file` starts with the gzip magic: a release tarball, not an executable. */
function isGzip(file: string): boolean {
  const fd = openSync(file, "r");
  try {
    const b = Buffer.alloc(2);
    return readSync(fd, b, 0, 2, 0) === 2 && b[0] === 0x1f && b[1] === 0x8b;
  } finally {
    closeSync(fd);
  }
}

/** Reads and checks manifest.json from a release tarball without unpacking the rest. */
export async function readReleaseManifest(file: string): Promise<Manifest> {
  let text: string | null = null;
  const STOP = new Error("stop");
  try {
    await readTarball(Bun.file(file).stream(), (e) => {
      if (e.path !== RELEASE_MANIFEST) throw new DecnetError("failed", `${file}: the first entry is ${e.path}, not ${RELEASE_MANIFEST}`);
      const chunks: Uint8Array[] = [];
      e.onData((c) => chunks.push(c));
      e.onEnd(() => {
        text = Buffer.concat(chunks).toString("utf8");
        throw STOP;
      });
    });
  } catch (e) {
    if (e !== STOP) throw e instanceof DecnetError ? e : new DecnetError("failed", `${file} is not a release tarball: ${(e as Error).message}`);
  }
  if (text === null) throw new DecnetError("failed", `${file} has no ${RELEASE_MANIFEST}`);
  const r = parseManifest(text);
  if (!r.ok) throw new DecnetError("failed", `${file}: ${r.problem}${r.issues ? ` (${r.issues[0]})` : ""}`);
  return r.manifest;
}

/**
 * The release for a push, in order of explicitness: --artifact (a release
 * tarball, or an executable), --self, or a build of the working tree; in a
 * push dir of its own (core/push-release.ts), hashed, with no tarball made
 * (a full push makes it when it needs it). `sign`: what the master packs or
 * builds is signed; a release tarball given as --artifact is sent as it is.
 */
/** `target`: the build's (core/targets.ts builds one release per target). */
export async function obtainRelease(o: { artifact?: string; self?: boolean; cwd?: string; sign?: PackOptions["sign"]; full?: boolean; target?: "linux-x64" | "linux-arm64" }): Promise<PushRelease> {
  if (o.artifact && o.self) throw usageError("give --artifact or --self, not both");
  if (o.artifact) {
    const file = resolve(o.cwd ?? process.cwd(), o.artifact);
    if (!existsSync(file) || !statSync(file).isFile()) throw usageError(`--artifact ${o.artifact}: no such file`);
    // For --full there is no delta to plan: the tarball's files stay packed.
    if (isGzip(file)) return releaseFromTarball(file, `artifact ${o.artifact}`, !o.full);
    const { version, info } = await identify(file, { shown: o.artifact });
    return releaseFromExecutable({ file, version, info, source: `artifact ${o.artifact}`, sign: o.sign });
  }
  if (o.self) {
    const info = buildInfo();
    if (!info.compiled) throw usageError("--self needs the compiled decnet (bun run build), not a source run");
    return releaseFromExecutable({ file: process.execPath, version: info.version, info: { git: info.git, built_at: info.built_at, target: info.target }, source: `self (${process.execPath})`, sign: o.sign });
  }
  const dir = buildDir();
  try {
    const b = await buildExecutable({ cwd: o.cwd, target: o.target }, dir);
    return releaseFromExecutable({ file: b.exe, version: b.version, info: { ...b.info, target: b.target }, source: b.source, sign: o.sign, move: true });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
