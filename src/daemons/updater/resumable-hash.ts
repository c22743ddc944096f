/**
 * A file's sha256 that leaves resume points every CHECKPOINT bytes: the
 * hasher's state there, and a crc32 of the segment before it. A later file
 * that starts with the same bytes resumes hashing at the last point of that
 * prefix instead of rehashing it; the crc32s (~20× cheaper than sha256) check
 * that the bytes on disk are still those that were hashed. Two builds of
 * decnet differ only near their end (the bundled app code), so a delta's new
 * binary resumes ~99% of the way in.
 *
 * Bun's hasher state cannot be saved to disk, only copied in memory: points
 * live as long as the updater process (Slots) and are made again by hashing
 * the file when they are missing.
 */
import { BLOCK_SIZE } from "../../protocol/delta.ts";

/** A whole number of delta blocks: a resumed prefix is also a run of blocks. */
export const CHECKPOINT = 64 * BLOCK_SIZE;

/** Entry i: after (i + 1) × CHECKPOINT bytes. States are shared: never updated, only copied. */
export interface ResumePoints {
  states: readonly Bun.CryptoHasher[];
  sums: readonly number[];
}

export class ResumableHash {
  private hash: Bun.CryptoHasher;
  private states: Bun.CryptoHasher[];
  private sums: number[];
  private crc = 0;
  private length: number;

  /** Starts empty, or after the first `bytes` (a multiple of CHECKPOINT) of a file with these points. */
  constructor(from?: { points: ResumePoints; bytes: number }) {
    const n = from ? from.bytes / CHECKPOINT : 0;
    if (from && (!Number.isInteger(n) || n < 1 || n > from.points.states.length)) throw new Error(`no resume point at byte ${from.bytes}`);
    this.hash = from ? from.points.states[n - 1]!.copy() : new Bun.CryptoHasher("sha256");
    this.states = from ? from.points.states.slice(0, n) : [];
    this.sums = from ? from.points.sums.slice(0, n) : [];
    this.length = from?.bytes ?? 0;
  }

  get bytes(): number {
    return this.length;
  }

  update(c: Uint8Array): void {
    for (let off = 0; off < c.byteLength; ) {
      const piece = c.subarray(off, off + Math.min(c.byteLength - off, CHECKPOINT - (this.length % CHECKPOINT)));
      this.hash.update(piece);
      this.crc = Bun.hash.crc32(piece, this.crc);
      off += piece.byteLength;
      this.length += piece.byteLength;
      if (this.length % CHECKPOINT === 0) {
        this.states.push(this.hash.copy());
        this.sums.push(this.crc);
        this.crc = 0;
      }
    }
  }

  points(): ResumePoints {
    return { states: this.states, sums: this.sums };
  }

  hex(): string {
    return this.hash.digest("hex");
  }
}
