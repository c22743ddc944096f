/**
 * The hostile-input gate: stream an uploaded release into
 * releases/.staging-*, entry by entry, refusing the whole upload on anything
 * not exactly as the manifest says. Nothing is written outside staging, and
 * staging is removed on any failure.
 */
import { chmodSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Manifest, MANIFEST_MAX_BYTES, Manifest as ManifestSchema, type ManifestFile, releaseId } from "../../protocol/manifest.ts";
import { DecnetError } from "../../lib/errors.ts";
import { RELEASE_MANIFEST, type SlotPaths } from "../../lib/paths.ts";
import { readTarball, type RawEntry } from "../../lib/tarball.ts";
import type { ResumePoints } from "./resumable-hash.ts";
import { bad, VerifiedFile } from "./verified-file.ts";

/** No release needs more, unpacked; caps what a small gzip can expand to. */
export const MAX_RELEASE_BYTES = 2 * 1024 ** 3;
/** An upload that sends nothing for this long is dropped. */
export const UPLOAD_STALL_MS = 60_000;

export interface Staged {
  dir: string;
  manifest: Manifest;
  bytesReceived: number;
  /** Per file, the sha256 of each BLOCK_SIZE block: the index for later delta pushes. */
  blocks: Record<string, Uint8Array>;
  /** Per file, where a later delta can resume hashing it. */
  points: Record<string, ResumePoints>;
  /** Bytes a delta did not rehash: the unchanged prefixes it resumed after. */
  resumedBytes: number;
  /** Bytes a delta found already in place in a spare file, and did not write. */
  keptBytes: number;
}

/** Yields the body's chunks, refusing past `max` bytes or after a stall. */
export async function* limited(body: ReadableStream<Uint8Array>, max: number, count: { n: number }, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  const reader = body.getReader();
  try {
    for (;;) {
      let timer: Timer | undefined;
      let onAbort: (() => void) | undefined;
      const stall = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(bad(`upload stalled: nothing received for ${UPLOAD_STALL_MS / 1000} s`)), UPLOAD_STALL_MS);
        // The client hung up: Bun aborts the request's signal, the body may just stop.
        onAbort = () => reject(bad("upload ended early: the client disconnected"));
        if (signal?.aborted) onAbort();
        else signal?.addEventListener("abort", onAbort, { once: true });
      });
      let r: Awaited<ReturnType<typeof reader.read>>;
      try {
        r = await Promise.race([reader.read(), stall]);
      } catch (e) {
        if (e instanceof DecnetError) throw e;
        throw bad(`upload ended early: ${(e as Error).message}`);
      } finally {
        clearTimeout(timer);
        if (onAbort) signal?.removeEventListener("abort", onAbort);
      }
      if (r.done) return;
      count.n += r.value.byteLength;
      if (count.n > max) throw new DecnetError("too_large", `upload is larger than the limit of ${max} bytes`, { detail: { limit: max } });
      yield r.value;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/** Why a raw tar entry is refused before its data is read, or null. */
function entryProblem(e: RawEntry): string | null {
  if (e.path.startsWith("/")) return `absolute path ${e.path}`;
  if (e.path.split("/").includes("..")) return `path ${e.path} escapes the release`;
  if (e.type === "SymbolicLink" || e.type === "Link") return `${e.type === "Link" ? "hard link" : "symlink"} ${e.path} -> ${e.linkpath}`;
  if (e.type !== "File" && e.type !== "OldFile" && e.type !== "ContiguousFile") return `${e.type} entry ${e.path}`;
  if (e.mode & 0o7000) return `${e.path} asks for setuid/setgid/sticky bits (mode ${(e.mode & 0o7777).toString(8)})`;
  return null;
}

export interface StageOptions {
  maxBytes: number;
  contentLength: number | null;
  /** The request's signal: aborted when the client disconnects. */
  signal?: AbortSignal;
  tag?: string;
}

export async function stageUpload(slots: SlotPaths, body: ReadableStream<Uint8Array> | null, o: StageOptions): Promise<Staged> {
  if (!body) throw bad("empty body: send the release .tar.gz");
  if (o.contentLength !== null && o.contentLength > o.maxBytes) {
    throw new DecnetError("too_large", `upload of ${o.contentLength} bytes is larger than the limit of ${o.maxBytes}`, { detail: { limit: o.maxBytes } });
  }
  mkdirSync(slots.releases, { recursive: true, mode: 0o755 });
  const dir = slots.staging(o.tag ?? `${Date.now()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(dir, { mode: 0o700 });
  const count = { n: 0 };
  let manifest: Manifest | null = null;
  let manifestText = "";
  const done = new Map<string, ManifestFile>();
  const blocks: Record<string, Uint8Array> = {};
  const points: Record<string, ResumePoints> = {};
  try {
    await readTarball(limited(body, o.maxBytes, count, o.signal), (e) => {
      const problem = entryProblem(e);
      if (problem) throw bad(`refused: ${problem}`);
      if (!manifest) {
        if (e.path !== RELEASE_MANIFEST) throw bad(`the first entry must be ${RELEASE_MANIFEST}, got ${e.path}`);
        if (e.size > MANIFEST_MAX_BYTES) throw bad(`${RELEASE_MANIFEST} is larger than ${MANIFEST_MAX_BYTES} bytes`);
        const chunks: Uint8Array[] = [];
        e.onData((c) => chunks.push(c));
        e.onEnd(() => {
          manifestText = Buffer.concat(chunks).toString("utf8");
          let raw: unknown;
          try {
            raw = JSON.parse(manifestText);
          } catch {
            throw bad(`${RELEASE_MANIFEST} is not JSON`);
          }
          const r = ManifestSchema.safeParse(raw);
          if (!r.success) throw bad(`invalid ${RELEASE_MANIFEST}`, r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`));
          const total = r.data.files.reduce((s, f) => s + f.size, 0);
          if (total > MAX_RELEASE_BYTES) throw bad(`release declares ${total} bytes, more than ${MAX_RELEASE_BYTES}`);
          const id = releaseId(r.data.files);
          if (id !== r.data.id) throw bad(`release id mismatch: manifest says ${r.data.id}, its files give ${id}`);
          manifest = r.data;
        });
        return;
      }
      const m: Manifest = manifest;
      const want = m.files.find((f) => f.path === e.path);
      if (!want) throw bad(`refused: ${e.path} is not listed in the manifest`);
      if (done.has(e.path)) throw bad(`refused: ${e.path} appears twice`);
      if (e.size !== want.size) throw bad(`size mismatch for ${e.path}: archive ${e.size}, manifest ${want.size}`);
      const mode = (e.mode & 0o777).toString(8).padStart(4, "0");
      if (mode !== want.mode) throw bad(`mode mismatch for ${e.path}: archive ${mode}, manifest ${want.mode}`);
      const file = new VerifiedFile(dir, want);
      e.onData((c) => file.write(c));
      e.onEnd(() => {
        ({ digests: blocks[e.path]!, points: points[e.path]! } = file.finish());
        done.set(e.path, want);
      });
    });
    const m = manifest as Manifest | null;
    if (!m) throw bad(`archive has no ${RELEASE_MANIFEST}`);
    const missing = m.files.filter((f) => !done.has(f.path)).map((f) => f.path);
    if (missing.length) throw bad(`archive ends before ${missing.join(", ")}`);
    for (const f of m.files) chmodSync(join(dir, f.path), Number.parseInt(f.mode, 8));
    writeFileSync(join(dir, RELEASE_MANIFEST), manifestText, { mode: 0o644 });
    return { dir, manifest: m, bytesReceived: count.n, blocks, points, resumedBytes: 0, keptBytes: 0 };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    if (e instanceof DecnetError) throw e;
    throw bad(`corrupt or truncated archive: ${(e as Error).message}`);
  }
}
