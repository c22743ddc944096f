/**
 * One release file written into staging and verified on the way: created
 * exclusively (or, for a delta, the spare's file rewritten in place), hashed
 * whole (with resume points) and per block as it is written, handed to the
 * disk early, and checked against the manifest at the end. Both staging
 * paths (full tarball, delta) write through it.
 */
import { closeSync, fchmodSync, fstatSync, fsyncSync, ftruncateSync, openSync, constants as C, readSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { ManifestFile } from "../../protocol/manifest.ts";
import { BLOCK_SIZE, BlockHasher } from "../../protocol/delta.ts";
import { DecnetError } from "../../lib/errors.ts";
import { copyRange, startWriteback } from "../../lib/libc.ts";
import { CHECKPOINT, ResumableHash, type ResumePoints } from "./resumable-hash.ts";

/** The refusal of an upload (full or delta) that is not as its manifest says. */
export const bad = (message: string, detail?: unknown) => new DecnetError("bad_archive", message, { detail });

/** Written data is handed to the disk in steps this big rather than all at the final fsync. */
const WRITEBACK_STEP = 8 * 1024 * 1024;

/**
 * A new file that starts with the first `bytes` of a verified base file:
 * the base's resume points and block digests stand for hashing them again.
 */
export interface Prefix {
  source: string;
  bytes: number;
  points: ResumePoints;
  digests: Uint8Array;
}

/**
 * Opens the file already at `path` (the spare's, see Slots.takeSpare) for
 * rewriting in place; null, with whatever was there removed, if it is not a
 * plain file with no other name (writing it must change nothing else).
 */
function openInPlace(path: string): number | null {
  let fd: number | null = null;
  try {
    fd = openSync(path, C.O_RDWR | C.O_NOFOLLOW);
    const st = fstatSync(fd);
    if (!st.isFile() || st.nlink !== 1) throw new Error("not a plain file");
    fchmodSync(fd, 0o600);
    return fd;
  } catch {
    if (fd !== null) closeSync(fd);
    rmSync(path, { recursive: true, force: true });
    return null;
  }
}

/**
 * One release file being written into staging: created exclusively (never
 * through anything already there, except a spare handed over on purpose),
 * hashed whole and per block as it is written, and checked against the
 * manifest at the end.
 */
export class VerifiedFile {
  private fd: number;
  private hash: ResumableHash;
  private blockHash = new BlockHasher();
  private written = 0;
  private flushed = 0;
  private closed = false;
  /** The file was a spare's, rewritten in place: it may be longer than this release's. */
  private inPlace = false;
  /** Bytes of the prefix that were already in place (not written). */
  kept = 0;

  /**
   * With a `prefix`, the file begins with the base's first bytes and hashing
   * resumes from the base's state there. Those bytes were verified when the
   * base was installed; their crc32s show they still are what was hashed
   * then (a faulty disk, a hand edit: `delta_unavailable`, and the master
   * sends the release whole). Everything after the prefix is hashed as it is
   * written.
   *
   * The prefix is a kernel copy from the base (a reflink where the filesystem
   * has them), except where `held` says the file already at this path, a
   * spare, holds it: a MiB whose block digests (from the spare's own
   * verification) equal the base's, and whose bytes on disk still have the
   * base's crc32, is left as it is. A spare MiB that fails either test is
   * copied from the base like the rest.
   */
  constructor(dir: string, private want: ManifestFile, prefix?: Prefix, held?: Uint8Array) {
    const path = join(dir, want.path);
    const reuse = held && prefix ? openInPlace(path) : null;
    this.inPlace = reuse !== null;
    this.fd = reuse ?? openSync(path, C.O_RDWR | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
    this.hash = new ResumableHash();
    if (!prefix) return;
    try {
      if (prefix.bytes > want.size) throw bad(`a prefix of ${prefix.bytes} bytes is longer than ${want.path} (${want.size})`);
      this.hash = new ResumableHash({ points: prefix.points, bytes: prefix.bytes });
      this.copyPrefix(prefix, this.inPlace ? held! : null);
      this.blockHash.append(prefix.digests.subarray(0, (prefix.bytes / BLOCK_SIZE) * 32));
      this.written = prefix.bytes;
      this.flushed = prefix.bytes;
    } catch (err) {
      this.close();
      throw err;
    }
  }

  private copyPrefix(prefix: Prefix, held: Uint8Array | null): void {
    const src = openSync(prefix.source, "r");
    const buf = Buffer.allocUnsafe(CHECKPOINT);
    const per = (CHECKPOINT / BLOCK_SIZE) * 32; // digest bytes per CHECKPOINT
    const sums = prefix.points.sums;
    /** Does the file already hold MiB `i` of the base? */
    const holds = (i: number): boolean =>
      held !== null &&
      held.byteLength >= (i + 1) * per &&
      Buffer.compare(held.subarray(i * per, (i + 1) * per), prefix.digests.subarray(i * per, (i + 1) * per)) === 0 &&
      readSync(this.fd, buf, 0, CHECKPOINT, i * CHECKPOINT) === CHECKPOINT &&
      Bun.hash.crc32(buf) === sums[i];
    let run = -1; // start of the copy from the base not yet made
    const copy = (end: number) => {
      if (run < 0) return;
      const copied = copyRange(src, this.fd, run, end - run);
      for (let seg = run; seg < end; seg += CHECKPOINT) {
        const got = readSync(src, buf, 0, CHECKPOINT, seg);
        if (got !== CHECKPOINT || Bun.hash.crc32(buf) !== sums[seg / CHECKPOINT]) {
          throw new DecnetError("delta_unavailable", `base file ${this.want.path} has changed on disk since it was installed (MiB ${seg / CHECKPOINT})`);
        }
        if (seg + CHECKPOINT > run + copied) this.put(buf, seg); // what the kernel did not copy
      }
      startWriteback(this.fd, run, end - run);
      run = -1;
    };
    try {
      for (let seg = 0; seg < prefix.bytes; seg += CHECKPOINT) {
        if (holds(seg / CHECKPOINT)) {
          copy(seg);
          this.kept += CHECKPOINT;
          continue;
        }
        if (run < 0) run = seg;
        if (seg + CHECKPOINT - run >= WRITEBACK_STEP) copy(seg + CHECKPOINT);
      }
      copy(prefix.bytes);
    } finally {
      closeSync(src);
    }
  }

  /** Writes all of `c` at `pos`. */
  private put(c: Uint8Array, pos: number): void {
    for (let off = 0; off < c.byteLength; ) off += writeSync(this.fd, c, off, c.byteLength - off, pos + off);
  }

  /**
   * Writes the next bytes. `knownDigests`, for whole blocks copied from a
   * verified release, are recorded rather than recomputed; the whole-file
   * sha256 still covers every byte, so a damaged source is caught at finish().
   */
  write(c: Uint8Array, knownDigests?: Uint8Array): void {
    if (this.written + c.byteLength > this.want.size) {
      this.close();
      throw bad(`size mismatch for ${this.want.path}: more than the manifest's ${this.want.size} bytes`);
    }
    try {
      this.hash.update(c);
      if (knownDigests) this.blockHash.append(knownDigests);
      else this.blockHash.update(c);
      this.put(c, this.written);
      this.written += c.byteLength;
      if (this.written - this.flushed >= WRITEBACK_STEP) {
        startWriteback(this.fd, this.flushed, this.written - this.flushed);
        this.flushed = this.written;
      }
    } catch (err) {
      this.close();
      throw err;
    }
  }

  private close(): void {
    if (!this.closed) {
      this.closed = true;
      closeSync(this.fd);
    }
  }

  /**
   * Flushes to disk, closes and verifies size and sha256; returns the block
   * digests and resume points. Flushed before `current` can point here: after
   * a power cut a release is whole or was never switched to.
   */
  finish(): { digests: Uint8Array; points: ResumePoints } {
    if (!this.closed) {
      if (this.inPlace) ftruncateSync(this.fd, this.written); // a longer spare's tail
      fsyncSync(this.fd);
    }
    this.close();
    const sha = this.hash.hex();
    if (this.written !== this.want.size) throw bad(`size mismatch for ${this.want.path}: got ${this.written} bytes, manifest ${this.want.size}`);
    if (sha !== this.want.sha256) throw bad(`sha256 mismatch for ${this.want.path}: got ${sha}, manifest ${this.want.sha256}`);
    return { digests: this.blockHash.finish(), points: this.hash.points() };
  }
}
