/**
 * Delta format 2 on the wire: whole base blocks copied as in format 1, and
 * every changed stretch sent as zstd frames compressed against the base's
 * nearby bytes (a raw-content dictionary the worker reads from its own copy).
 */
import { z } from "zod";
import { SIGNATURE_MAX_BYTES } from "./signature.ts";
import { Manifest, ReleasePath } from "./manifest.ts";

/**
 * Body: MAGIC, u32 LE length of the header frame, the header frame (zstd of
 * the header JSON, no dictionary), then each "zstd" op's frame in op order,
 * exactly as long as the op says, and nothing after. A format-1 body starts
 * with the gzip magic (1f 8b), so the two are told apart by their first bytes.
 */
export const DELTA2_MAGIC = new Uint8Array([0x44, 0x4e, 0x5a, 0x32]); // "DNZ2"
export const DELTA2_FORMAT = 2;

/** Decompressed header JSON at most (a 64-file manifest and its ops fit many times over). */
export const DELTA2_HEADER_MAX = 1024 * 1024;
/** Nesting of the header JSON at most: ops are arrays in a record in an object (depth 4). */
export const DELTA2_HEADER_DEPTH = 6;
/**
 * One frame's decompressed bytes at most: 256 KiB (16 blocks). Measured on two
 * 110 MB builds one app line apart, 256 KiB frames with ±128 KiB of base
 * around them sent 1.5 kB; the updater holds one frame and its dictionary.
 */
export const DELTA2_FRAME_MAX = 256 * 1024;
/**
 * One dictionary at most. zstd at the levels used here (dfast) loads only the
 * last 1 MiB of a raw-content dictionary (hashLog 17 + 3): more would be read
 * from disk and ignored.
 */
export const DELTA2_DICT_MAX = 1024 * 1024;
/** A frame's compressed size at most: zstd's worst case for DELTA2_FRAME_MAX plus its header. */
export const DELTA2_FRAME_BOUND = DELTA2_FRAME_MAX + (DELTA2_FRAME_MAX >> 7) + 1024;
/** zstd window allowed in a frame: single-segment frames have the content size as window. */
export const DELTA2_WINDOW_MAX = 8 * 1024 * 1024;

const Count = z.number().int().nonnegative();

/** ["copy", base file, first block, block count]: as format 1. */
export const CopyOp = z.tuple([z.literal("copy"), ReleasePath, Count, z.number().int().positive()]);
/**
 * ["zstd", decompressed bytes, frame bytes, dictionary]: the next frame of the
 * body; `dict` is [base file, byte offset, byte length] of the base, or null.
 */
export const ZstdOp = z.tuple([
  z.literal("zstd"),
  z.number().int().positive().max(DELTA2_FRAME_MAX),
  z.number().int().positive().max(DELTA2_FRAME_BOUND),
  z.tuple([ReleasePath, Count, z.number().int().positive().max(DELTA2_DICT_MAX)]).nullable(),
]);
export const Delta2Op = z.union([CopyOp, ZstdOp]);
export type Delta2Op = z.infer<typeof Delta2Op>;
export type ZstdOp = z.infer<typeof ZstdOp>;

export const Delta2Header = z.object({
  format: z.literal(DELTA2_FORMAT),
  base: z.string().regex(/^[0-9a-f]{64}$/),
  block_size: z.number().int().positive(),
  manifest: Manifest,
  /** Ops per file path, for every file of the manifest, in manifest order on the wire. */
  ops: z.record(ReleasePath, z.array(Delta2Op).max(1_000_000)),
  /** The release's signature.json as its tarball carries it (DESIGN §11), when it is signed. */
  signature: z.string().max(SIGNATURE_MAX_BYTES).optional(),
});
export type Delta2Header = z.infer<typeof Delta2Header>;

/** Delta formats an updater accepts; an updater that does not say accepts [1]. */
export const DeltaFormats = z.array(z.number().int().positive()).max(16);
