/**
 * Delta uploads: the release described as fixed-size blocks with their
 * sha256, so a push sends only what the worker lacks. The body of
 * `POST /update?delta=<base>` is gzip( header JSON, "\n", literal bytes ),
 * where the header's ops rebuild each file from the base release's blocks and
 * the literals, in order.
 */
import { z } from "zod";
import { Manifest, ReleaseId, ReleasePath } from "./manifest.ts";
import { SIGNATURE_MAX_BYTES } from "./signature.ts";

/**
 * 16 KiB: measured on a compiled decnet, a one-line app change touches 24
 * such blocks (87 KB gzipped); 64 KiB blocks send 123 KB, 256 KiB 234 KB.
 * Smaller blocks would grow the hash list (32 bytes a block) faster than
 * they shrink the literals.
 */
export const BLOCK_SIZE = 16 * 1024;
export const DELTA_HEADER_MAX = 1024 * 1024;

/** Length of block `i` of a file of `size` bytes: whole, except perhaps the last. */
export const blockLen = (size: number, i: number) => Math.min(BLOCK_SIZE, size - i * BLOCK_SIZE);

/** GET /blocks?release=ID: every file's block digests, concatenated, base64. */
export const BlocksResponse = z.object({
  release: z.string(),
  block_size: z.number().int().positive(),
  files: z.record(ReleasePath, z.object({ size: z.number().int().nonnegative(), hashes: z.string() })),
});
export type BlocksResponse = z.infer<typeof BlocksResponse>;

/** ["copy", base file, first block, count] or ["data", byte count]. */
export const DeltaOp = z.union([
  z.tuple([z.literal("copy"), ReleasePath, z.number().int().nonnegative(), z.number().int().positive()]),
  z.tuple([z.literal("data"), z.number().int().positive()]),
]);
export type DeltaOp = z.infer<typeof DeltaOp>;

export const DeltaHeader = z.object({
  format: z.literal(1),
  base: ReleaseId,
  block_size: z.number().int().positive(),
  manifest: Manifest,
  /** Ops per file path, for every file of the manifest. */
  ops: z.record(ReleasePath, z.array(DeltaOp).max(1_000_000)),
  /** The release's signature.json as its tarball carries it (DESIGN §11), when it is signed. */
  signature: z.string().max(SIGNATURE_MAX_BYTES).optional(),
});
export type DeltaHeader = z.infer<typeof DeltaHeader>;

/**
 * Splits a byte stream at block boundaries, without copying: each piece lies
 * inside one block, and `ends` says it completes that block. The one
 * chunker of master (planning a delta) and worker (indexing a release).
 */
export class BlockSplitter {
  private filled = 0;
  constructor(private size = BLOCK_SIZE) {}

  split(chunk: Uint8Array, fn: (piece: Uint8Array, ends: boolean) => void): void {
    for (let off = 0; off < chunk.byteLength; ) {
      const take = Math.min(this.size - this.filled, chunk.byteLength - off);
      this.filled += take;
      const ends = this.filled === this.size;
      if (ends) this.filled = 0;
      fn(chunk.subarray(off, off + take), ends);
      off += take;
    }
  }

  /** Bytes of the block not yet complete (a final short block, at the end). */
  get pending(): number {
    return this.filled;
  }
}

/** Block digests of a byte stream, computed as it is read. */
export class BlockHasher {
  private block = new Bun.CryptoHasher("sha256");
  private splitter: BlockSplitter;
  private digests: Uint8Array[] = [];
  constructor(size = BLOCK_SIZE) {
    this.splitter = new BlockSplitter(size);
  }

  update(chunk: Uint8Array): void {
    this.splitter.split(chunk, (piece, ends) => {
      this.block.update(piece);
      if (ends) this.flush();
    });
  }

  private flush(): void {
    this.digests.push(new Uint8Array(this.block.digest()));
    this.block = new Bun.CryptoHasher("sha256");
  }

  /**
   * Adds digests already known for whole blocks (copied from a release whose
   * index was recorded when it was verified). Only at a block boundary.
   */
  append(digests: Uint8Array): void {
    if (this.splitter.pending !== 0) throw new Error("BlockHasher.append off a block boundary");
    this.digests.push(digests);
  }

  /** All digests, 32 bytes each; a final partial block counts as a block. */
  finish(): Uint8Array {
    if (this.splitter.pending > 0) this.flush();
    return Buffer.concat(this.digests);
  }
}
