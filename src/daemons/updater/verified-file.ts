/**
 * One release file written into staging and verified on the way: created
 * exclusively, hashed whole (with resume points) and per block as it is
 * written, handed to the disk early, and checked against the manifest at
 * the end. Both staging paths (full tarball, delta) write through it.
 */
import { closeSync, fsyncSync, openSync, constants as C, readSync, writeSync } from "node:fs";
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
 * One release file being written into staging: created exclusively (never
 * through anything already there), hashed whole and per block as it is
 * written, and checked against the manifest at the end.
 */
export class VerifiedFile {
  private fd: number;
  private hash: ResumableHash;
  private blockHash = new BlockHasher();
  private written = 0;
  private flushed = 0;
  private closed = false;

  /**
   * With a `prefix`, the file begins as a kernel copy (a reflink where the
   * filesystem has them) of the base's first bytes, and hashing resumes
   * from the base's state there. Those bytes were verified when the base was
   * installed; their crc32s show they still are what was hashed then (a
   * faulty disk, a hand edit: `delta_unavailable`, and the master sends the
   * release whole). Everything after the prefix is hashed as it is written.
   */
  constructor(dir: string, private want: ManifestFile, prefix?: Prefix) {
    this.fd = openSync(join(dir, want.path), C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
    this.hash = new ResumableHash();
    if (!prefix) return;
    try {
      if (prefix.bytes > want.size) throw bad(`a prefix of ${prefix.bytes} bytes is longer than ${want.path} (${want.size})`);
      this.hash = new ResumableHash({ points: prefix.points, bytes: prefix.bytes });
      const src = openSync(prefix.source, "r");
      try {
        const buf = Buffer.allocUnsafe(CHECKPOINT);
        for (let pos = 0; pos < prefix.bytes; pos += WRITEBACK_STEP) {
          const step = Math.min(WRITEBACK_STEP, prefix.bytes - pos);
          const copied = copyRange(src, this.fd, pos, step);
          for (let seg = pos; seg < pos + step; seg += CHECKPOINT) {
            const got = readSync(src, buf, 0, CHECKPOINT, seg);
            if (got !== CHECKPOINT || Bun.hash.crc32(buf) !== prefix.points.sums[seg / CHECKPOINT]) {
              throw new DecnetError("delta_unavailable", `base file ${want.path} has changed on disk since it was installed (MiB ${seg / CHECKPOINT})`);
            }
            if (seg + CHECKPOINT > pos + copied) this.put(buf, seg); // what the kernel did not copy
          }
          startWriteback(this.fd, pos, step);
        }
      } finally {
        closeSync(src);
      }
      this.blockHash.append(prefix.digests.subarray(0, (prefix.bytes / BLOCK_SIZE) * 32));
      this.written = prefix.bytes;
      this.flushed = prefix.bytes;
    } catch (err) {
      this.close();
      throw err;
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
    if (!this.closed) fsyncSync(this.fd);
    this.close();
    const sha = this.hash.hex();
    if (this.written !== this.want.size) throw bad(`size mismatch for ${this.want.path}: got ${this.written} bytes, manifest ${this.want.size}`);
    if (sha !== this.want.sha256) throw bad(`sha256 mismatch for ${this.want.path}: got ${sha}, manifest ${this.want.sha256}`);
    return { digests: this.blockHash.finish(), points: this.hash.points() };
  }
}
