/**
 * What both upload paths (a whole tarball, a delta) share: a staging dir,
 * releases/.staging-*, that is the operation's scope. It owns every fd it
 * opens and what reading the upload holds (the body's reader, its stall
 * timer and abort listener, the decompressor): on any path out of it
 * (success, refusal, client gone, timeout, exception) all are released and,
 * unless it completed, the dir is removed — by construction, not by a
 * clean-up per call site.
 */
import { chmodSync, closeSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Manifest } from "../../protocol/manifest.ts";
import { DecnetError } from "../../lib/errors.ts";
import { gunzip } from "../../lib/gunzip.ts";
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
  /** This updater's target: a manifest naming another is refused once read (target-gate.ts). */
  target?: string;
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

/** What a staging still holds: 0 and 0 once it has ended. */
export interface Held {
  fds: number;
  /** Clean-ups not run yet: the upload body's reader, its stall timer and abort listener, a decompressor. */
  cleanups: number;
}

/** Whoever owns an upload reader's clean-ups: a Staging, or a Cleanups before one exists. */
export interface Scope {
  defer(fn: () => void | Promise<void>): void;
}

/** Clean-ups run once, last registered first: the scope of work done before a staging dir exists (disk-room.ts). */
export class Cleanups implements Scope {
  private fns: Array<() => void | Promise<void>> = [];
  defer(fn: () => void | Promise<void>): void {
    this.fns.push(fn);
  }
  async run(): Promise<void> {
    while (this.fns.length) {
      try {
        await this.fns.pop()!();
      } catch {}
    }
  }
}

export class Staging implements AsyncDisposable, Scope {
  readonly dir: string;
  private fds = new Set<number>();
  private cleanups: Array<() => void | Promise<void>> = [];
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

  /** Runs `fn` when the staging ends, on every path out of it (last registered, first run). */
  defer(fn: () => void | Promise<void>): void {
    this.cleanups.push(fn);
  }

  held(): Held {
    return { fds: this.fds.size, cleanups: this.cleanups.length };
  }

  /** Every file's mode as the manifest says, and the manifest itself: staging is a release now. */
  complete(manifest: Manifest, manifestText = `${JSON.stringify(manifest, null, 2)}\n`): void {
    for (const f of manifest.files) chmodSync(join(this.dir, f.path), Number.parseInt(f.mode, 8));
    writeFileSync(join(this.dir, RELEASE_MANIFEST), manifestText, { mode: 0o644 });
    this.completed = true;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    while (this.cleanups.length) {
      try {
        await this.cleanups.pop()!();
      } catch {}
    }
    for (const fd of this.fds) {
      try { closeSync(fd); } catch {}
    }
    this.fds.clear();
    if (!this.completed) rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * The upload's body as chunks, refused past `o.maxBytes` (counted into
 * `count`), after `timeouts.uploadStall()` with nothing received, or when the
 * client disconnects. Its reader, stall timer and abort listener belong to
 * `s`: released on every path out of the staging, whoever stopped reading.
 */
export function uploadChunks(s: Scope, body: ReadableStream<Uint8Array>, o: StageOptions, count: { n: number }): AsyncIterableIterator<Uint8Array> {
  const reader = body.getReader();
  s.defer(() => reader.cancel().catch(() => {}));
  const stallMs = timeouts.uploadStall();
  // A stall or a disconnect cancels the reader, which ends a pending read;
  // the next read then throws why. (Racing each read against one long-lived
  // "failed" promise would keep every chunk reachable until the upload ends.)
  let failure: DecnetError | null = null;
  const fail = (e: DecnetError) => {
    failure ??= e;
    reader.cancel(e).catch(() => {});
  };
  const timer = setTimeout(() => fail(bad(`upload stalled: nothing received for ${stallMs / 1000} s`)), stallMs);
  s.defer(() => clearTimeout(timer));
  // The client hung up: Bun aborts the request's signal, the body may just stop.
  const onAbort = () => fail(bad("upload ended early: the client disconnected"));
  if (o.signal?.aborted) onAbort();
  else if (o.signal) {
    o.signal.addEventListener("abort", onAbort, { once: true });
    s.defer(() => o.signal!.removeEventListener("abort", onAbort));
  }
  const next = async (): Promise<IteratorResult<Uint8Array>> => {
    let r: Awaited<ReturnType<typeof reader.read>>;
    try {
      r = await reader.read();
    } catch (e) {
      // A refusal made upstream (a reader that already applied these limits) stays what it is.
      throw failure ?? (e instanceof DecnetError ? e : bad(`upload ended early: ${(e as Error).message}`));
    }
    if (failure) throw failure;
    if (r.done) return { done: true, value: undefined };
    timer.refresh();
    count.n += r.value.byteLength;
    if (count.n > o.maxBytes) throw new DecnetError("too_large", `upload is larger than the limit of ${o.maxBytes} bytes`, { detail: { limit: o.maxBytes } });
    return { done: false, value: r.value };
  };
  const it: AsyncIterableIterator<Uint8Array> = { next, [Symbol.asyncIterator]: () => it };
  return it;
}

/** The upload's body, refused at once when it says it is too large. */
export function uploadBody(body: ReadableStream<Uint8Array> | null, o: StageOptions, what: string): ReadableStream<Uint8Array> {
  if (!body) throw bad(`empty body: send the ${what}`);
  if (o.contentLength !== null && o.contentLength > o.maxBytes) {
    throw new DecnetError("too_large", `upload of ${o.contentLength} bytes is larger than the limit of ${o.maxBytes}`, { detail: { limit: o.maxBytes } });
  }
  return body;
}

/**
 * The upload decompressed as it is read, under `maxPlain` decompressed bytes;
 * the decompressor belongs to `s` like the body under it.
 */
export function plainChunks(s: Staging, body: ReadableStream<Uint8Array>, o: StageOptions, count: { n: number }, maxPlain: number, what: string): AsyncIterator<Uint8Array> {
  const plain = gunzip(uploadChunks(s, body, o, count), maxPlain, what);
  s.defer(async () => {
    await plain.return(undefined);
  });
  return plain;
}

/**
 * Runs one staging: `fn` fills it and returns the result. Anything but a
 * refusal decnet made itself is reported as a corrupt or truncated `what`.
 */
export async function stage<T>(paths: SlotPaths, o: StageOptions, what: string, fn: (s: Staging) => Promise<T>): Promise<T> {
  await using s = new Staging(paths, o.tag);
  try {
    return await fn(s);
  } catch (e) {
    if (e instanceof DecnetError) throw e;
    throw bad(`corrupt or truncated ${what}: ${(e as Error).message}`);
  }
}
