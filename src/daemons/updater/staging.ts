/**
 * What both upload paths (a whole tarball, a delta) share: the upload body
 * read under a size limit and a stall timeout, and a staging dir,
 * releases/.staging-*, that owns every file it opens. The staging is the
 * operation's scope: on any path out of it (success, refusal, client gone,
 * exception) its files are closed, and unless it completed, the dir is
 * removed — by construction, not by a clean-up per call site.
 */
import { chmodSync, closeSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Manifest } from "../../protocol/manifest.ts";
import { DecnetError } from "../../lib/errors.ts";
import { RELEASE_MANIFEST, type SlotPaths } from "../../lib/paths.ts";
import { timeouts } from "../../lib/timeouts.ts";
import type { Digests } from "./block-index.ts";
import type { FilePoints } from "./resume-cache.ts";

/** The refusal of an upload (full or delta) that is not as its manifest says. */
export const bad = (message: string, detail?: unknown) => new DecnetError("bad_archive", message, { detail });

/** No release needs more, unpacked; caps what a small gzip can expand to. */
export const MAX_RELEASE_BYTES = 2 * 1024 ** 3;

export interface StageOptions {
  maxBytes: number;
  contentLength: number | null;
  /** The request's signal: aborted when the client disconnects. */
  signal?: AbortSignal;
  tag?: string;
}

/** A verified release in staging, and what staging it did. */
export interface Staged {
  dir: string;
  manifest: Manifest;
  /** Per file, the sha256 of each block: the index for later delta pushes. */
  blocks: Digests;
  /** Per file, where a later delta can resume hashing it. */
  points: FilePoints;
  /** signature.json's bytes as the upload carried them, or null for an unsigned release. */
  signature: Uint8Array | null;
  report: {
    mode: "full" | "delta";
    bytes_received: number;
    /** Bytes the worker wrote (a delta's bytes already in place are not written). */
    bytes_written: number;
    bytes_in_place: number;
    bytes_resumed: number;
  };
}

/** Yields the body's chunks, refusing past `max` bytes or after a stall. */
export async function* limited(body: ReadableStream<Uint8Array>, max: number, count: { n: number }, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  const reader = body.getReader();
  const stallMs = timeouts.uploadStall();
  try {
    for (;;) {
      let timer: Timer | undefined;
      let onAbort: (() => void) | undefined;
      const stall = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(bad(`upload stalled: nothing received for ${stallMs / 1000} s`)), stallMs);
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

/** The upload's body, refused at once when it says it is too large. */
export function uploadBody(body: ReadableStream<Uint8Array> | null, o: StageOptions, what: string): ReadableStream<Uint8Array> {
  if (!body) throw bad(`empty body: send the ${what}`);
  if (o.contentLength !== null && o.contentLength > o.maxBytes) {
    throw new DecnetError("too_large", `upload of ${o.contentLength} bytes is larger than the limit of ${o.maxBytes}`, { detail: { limit: o.maxBytes } });
  }
  return body;
}

export class Staging implements Disposable {
  readonly dir: string;
  private fds = new Set<number>();
  private completed = false;

  constructor(paths: SlotPaths, tag = `${Date.now()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`) {
    mkdirSync(paths.releases, { recursive: true, mode: 0o755 });
    this.dir = paths.staging(tag);
    mkdirSync(this.dir, { mode: 0o700 });
  }

  /** Takes ownership of an open fd: closed on every path out of the staging. */
  own(fd: number): number {
    this.fds.add(fd);
    return fd;
  }

  /** Closes an owned fd now. */
  close(fd: number): void {
    if (this.fds.delete(fd)) closeSync(fd);
  }

  /** Every file's mode as the manifest says, and the manifest itself: staging is a release now. */
  complete(manifest: Manifest, manifestText = `${JSON.stringify(manifest, null, 2)}\n`): void {
    for (const f of manifest.files) chmodSync(join(this.dir, f.path), Number.parseInt(f.mode, 8));
    writeFileSync(join(this.dir, RELEASE_MANIFEST), manifestText, { mode: 0o644 });
    this.completed = true;
  }

  [Symbol.dispose](): void {
    for (const fd of this.fds) {
      try { closeSync(fd); } catch {}
    }
    this.fds.clear();
    if (!this.completed) rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Runs one staging: `fn` fills it and returns the result. Anything but a
 * refusal decnet made itself is reported as a corrupt or truncated `what`.
 */
export async function stage<T>(paths: SlotPaths, o: StageOptions, what: string, fn: (s: Staging) => Promise<T>): Promise<T> {
  using s = new Staging(paths, o.tag);
  try {
    return await fn(s);
  } catch (e) {
    if (e instanceof DecnetError) throw e;
    throw bad(`corrupt or truncated ${what}: ${(e as Error).message}`);
  }
}
