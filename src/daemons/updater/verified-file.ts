/**
 * One release file written into staging and verified on the way: created
 * exclusively (or a spare's file adopted for rewriting in place), hashed
 * whole (with resume points) and per block as it is written, handed to the
 * disk early, and checked against the manifest at the end. Both upload paths
 * (full tarball, delta) write through it; its fd belongs to the staging.
 */
import { constants as C, fsyncSync, ftruncateSync, openSync, readSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { ManifestFile } from "../../protocol/manifest.ts";
import { BLOCK_SIZE, BlockHasher } from "../../protocol/delta.ts";
import { DecnetError } from "../../lib/errors.ts";
import { copyRange, startWriteback } from "../../lib/libc.ts";
import { CHECKPOINT, ResumableHash, type ResumePoints } from "./resumable-hash.ts";
import type { HeldFile } from "./spare.ts";
import { bad, type Staging } from "./staging.ts";

/** Written data is handed to the disk in steps this big rather than all at the final fsync. */
const WRITEBACK_STEP = 8 * 1024 * 1024;

/**
 * The first `bytes` of a verified base file, which a new file starts with:
 * the base's resume points and block digests stand for hashing them again.
 */
export interface Prefix {
  source: string;
  bytes: number;
  points: ResumePoints;
  digests: Uint8Array;
}

export class VerifiedFile {
  private fd: number;
  private hash = new ResumableHash();
  private blockHash = new BlockHasher();
  private written = 0;
  private flushed = 0;
  private open = true;
  /** Bytes of the prefix that were already in place (not written). */
  kept = 0;

  /**
   * `held`: the spare's file, already at this path and open, to rewrite in
   * place (see spare.ts); otherwise the file is created, never through
   * anything already there.
   */
  constructor(
    private staging: Staging,
    private want: ManifestFile,
    private held: HeldFile | null = null,
  ) {
    const path = join(staging.dir, want.path);
    this.fd = held ? staging.own(held.fd) : staging.own(openSync(path, C.O_RDWR | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600));
  }

  get path(): string {
    return this.want.path;
  }

  /**
   * Starts the file with the base's first `prefix.bytes`, resuming the hash
   * from the base's state there. Those bytes were verified when the base was
   * installed; their crc32s show they still are what was hashed then (a
   * faulty disk, a hand edit: `delta_unavailable`, and the master sends the
   * release whole). Each MiB the held spare provably holds already stays
   * where it is; the rest is a kernel copy from the base (a reflink where
   * the filesystem has them). Only before any write.
   */
  copyPrefix(prefix: Prefix): void {
    if (this.written !== 0) throw new Error("copyPrefix after a write");
    if (prefix.bytes > this.want.size) throw bad(`a prefix of ${prefix.bytes} bytes is longer than ${this.want.path} (${this.want.size})`);
    this.hash = new ResumableHash({ points: prefix.points, bytes: prefix.bytes });
    const src = this.staging.own(openSync(prefix.source, "r"));
    const buf = Buffer.allocUnsafe(CHECKPOINT);
    const sums = prefix.points.sums;
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
        const i = seg / CHECKPOINT;
        if (this.held?.holds(i, prefix.digests, sums[i]!, buf)) {
          copy(seg);
          this.kept += CHECKPOINT;
          continue;
        }
        if (run < 0) run = seg;
        if (seg + CHECKPOINT - run >= WRITEBACK_STEP) copy(seg + CHECKPOINT);
      }
      copy(prefix.bytes);
    } finally {
      this.staging.close(src);
    }
    this.blockHash.append(prefix.digests.subarray(0, (prefix.bytes / BLOCK_SIZE) * 32));
    this.written = prefix.bytes;
    this.flushed = prefix.bytes;
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
    if (this.written + c.byteLength > this.want.size) throw bad(`size mismatch for ${this.want.path}: more than the manifest's ${this.want.size} bytes`);
    this.hash.update(c);
    if (knownDigests) this.blockHash.append(knownDigests);
    else this.blockHash.update(c);
    this.put(c, this.written);
    this.written += c.byteLength;
    if (this.written - this.flushed >= WRITEBACK_STEP) {
      startWriteback(this.fd, this.flushed, this.written - this.flushed);
      this.flushed = this.written;
    }
  }

  /**
   * Flushes to disk, closes and verifies size and sha256; returns the block
   * digests and resume points. Flushed before `current` can point here: after
   * a power cut a release is whole or was never switched to.
   */
  finish(): { digests: Uint8Array; points: ResumePoints } {
    if (this.open) {
      if (this.held) ftruncateSync(this.fd, this.written); // a longer spare's tail
      fsyncSync(this.fd);
      this.open = false;
      this.staging.close(this.fd);
    }
    const sha = this.hash.hex();
    if (this.written !== this.want.size) throw bad(`size mismatch for ${this.want.path}: got ${this.written} bytes, manifest ${this.want.size}`);
    if (sha !== this.want.sha256) throw bad(`sha256 mismatch for ${this.want.path}: got ${sha}, manifest ${this.want.sha256}`);
    return { digests: this.blockHash.finish(), points: this.hash.points() };
  }
}
