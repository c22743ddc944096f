/**
 * Writing a format-2 delta on the master: whole blocks the worker's base has
 * are copied as in format 1; every other stretch is cut into frames of at
 * most 256 KiB, each zstd-compressed against the base's bytes around where it
 * lies (read from the master's cached copy of the base; without one, no
 * dictionary). A one-line app change comes to ~2 kB instead of ~160 kB.
 */
import { constants as Z, zstdCompressSync } from "node:zlib";
import { BLOCK_SIZE, blockLen, type DeltaHeader, type DeltaOp } from "../protocol/delta.ts";
import { DELTA2_DICT_MAX, DELTA2_FORMAT, DELTA2_FRAME_MAX, DELTA2_MAGIC, type Delta2Header, type Delta2Op } from "../protocol/delta2.ts";
import type { BlockIndex } from "../protocol/block-index.ts";
import type { Manifest, ManifestFile } from "../protocol/manifest.ts";

/** One file of the new release, as the plan reads it. */
export interface NewFile {
  file: ManifestFile;
  /** The full sha256 of each block (32 bytes each). */
  digests: Uint8Array;
  /** Exactly `length` bytes of the file at `offset`. */
  read(offset: number, length: number): Uint8Array;
}

/** The master's own copy of the base release, for dictionaries; null where it has none. */
export interface BaseBytes {
  read(path: string, offset: number, length: number): Uint8Array | null;
}

export interface Delta2Stats {
  copiedBlocks: number;
  /** Bytes sent as frames, before compression. */
  literalBytes: number;
  frames: number;
  /** Frames compressed against a dictionary. */
  framesWithDict: number;
  frameBytes: number;
  headerBytes: number;
  bodyBytes: number;
  totalBytes: number;
}

export interface Delta2Options {
  manifest: Manifest;
  files: NewFile[];
  base: BlockIndex;
  baseBytes?: BaseBytes | null;
  /** zstd level against a dictionary: 3 by default (19 saved 2–10% on real builds at 12× the time). */
  level?: number;
  /**
   * zstd level without one: 9 by default (on B's 559 kB of changed blocks,
   * 155 kB in 22 ms; level 3 gave 170 kB, gzip -6 164 kB, level 19 149 kB in 142 ms).
   */
  levelWithoutDict?: number;
  /** Base bytes on each side of a frame's place in the dictionary. */
  margin?: number;
  /** The release's signature.json, carried in the header when it is signed. */
  signature?: string;
  /** Give up (null) once the frames pass this: a quarter of the release by default, about a full push's gzip. */
  maxBodyBytes?: number;
}

type Segment = { kind: "copy"; path: string; first: number; count: number } | { kind: "data"; from: number; to: number };

/** A base's blocks by digest (first occurrence) and by position, on `width`-byte digests. */
function baseLookup(base: BlockIndex) {
  const w = base.width;
  const key = (d: Uint8Array) => Buffer.from(d.buffer, d.byteOffset, w).toString("latin1");
  const byDigest = new Map<string, { path: string; index: number }>();
  for (const [path, f] of Object.entries(base.files)) {
    for (let i = 0; i * w < f.digests.byteLength; i++) {
      const k = key(f.digests.subarray(i * w, i * w + w));
      if (!byDigest.has(k)) byDigest.set(k, { path, index: i });
    }
  }
  const at = (path: string, index: number, d: Uint8Array) => {
    const f = base.files[path];
    return f && (index + 1) * w <= f.digests.byteLength && Buffer.compare(f.digests.subarray(index * w, index * w + w), d.subarray(0, w)) === 0 ? { path, index } : null;
  };
  return { find: (d: Uint8Array) => byDigest.get(key(d)) ?? null, at };
}

/** The new file as copy runs of base blocks and runs of blocks the base lacks. */
function segments(f: NewFile, base: BlockIndex, have: ReturnType<typeof baseLookup>): Segment[] {
  const out: Segment[] = [];
  const blocks = Math.ceil(f.file.size / BLOCK_SIZE);
  for (let n = 0; n < blocks; n++) {
    const d = f.digests.subarray(n * 32, n * 32 + 32);
    const last = out.at(-1);
    // Continue the current run, else the same place, else anywhere (as format 1).
    const hit = (last?.kind === "copy" ? have.at(last.path, last.first + last.count, d) : null) ?? have.at(f.file.path, n, d) ?? have.find(d);
    const len = blockLen(f.file.size, n);
    if (hit && blockLen(base.files[hit.path]!.size, hit.index) === len) {
      if (last?.kind === "copy" && last.path === hit.path && last.first + last.count === hit.index) last.count += 1;
      else out.push({ kind: "copy", path: hit.path, first: hit.index, count: 1 });
    } else if (last?.kind === "data") last.to = n + 1;
    else out.push({ kind: "data", from: n, to: n + 1 });
  }
  return out;
}

/**
 * Where a data run's bytes most likely were in the base: the copies on
 * either side pin the base offset at its two ends (a run between them grew
 * or shrank by the difference); one side alone pins both; with neither, the
 * same file at the same offset.
 */
function anchors(segs: Segment[], i: number, path: string, base: BlockIndex) {
  const s = segs[i] as Extract<Segment, { kind: "data" }>;
  const prev = segs[i - 1]?.kind === "copy" ? (segs[i - 1] as Extract<Segment, { kind: "copy" }>) : null;
  const next = segs[i + 1]?.kind === "copy" ? (segs[i + 1] as Extract<Segment, { kind: "copy" }>) : null;
  const start = s.from * BLOCK_SIZE;
  const end = s.to * BLOCK_SIZE;
  const before = prev ? { path: prev.path, shift: (prev.first + prev.count) * BLOCK_SIZE - start } : null;
  const after = next ? { path: next.path, shift: next.first * BLOCK_SIZE - end } : null;
  const one = before ?? after ?? (base.files[path] ? { path, shift: 0 } : null);
  if (!one) return null;
  const other = after && after.path === one.path ? after : one;
  return { path: one.path, shift0: one.shift, shift1: other.shift, start, end };
}

/** The base range to use as dictionary for new bytes [cs, ce) of a run, at most DELTA2_DICT_MAX. */
function dictRange(a: NonNullable<ReturnType<typeof anchors>>, cs: number, ce: number, margin: number, baseSize: number): [number, number] | null {
  const span = Math.max(1, a.end - a.start);
  const shiftAt = (x: number) => a.shift0 + ((a.shift1 - a.shift0) * (x - a.start)) / span;
  let lo = Math.floor(cs + shiftAt(cs) - margin);
  let hi = Math.ceil(ce + shiftAt(ce) + margin);
  const over = hi - lo - DELTA2_DICT_MAX;
  if (over > 0) {
    lo += Math.ceil(over / 2);
    hi -= Math.floor(over / 2);
  }
  lo = Math.max(0, lo);
  hi = Math.min(baseSize, hi);
  return hi > lo ? [lo, hi - lo] : null;
}

/**
 * The format-2 body of `files` against `base`; null when it would pass
 * `maxBodyBytes` (a full push is then as good).
 */
export function encodeDelta2(o: Delta2Options): { body: Uint8Array; stats: Delta2Stats } | null {
  const level = o.level ?? 3;
  const have = baseLookup(o.base);
  const totalBytes = o.files.reduce((s, f) => s + f.file.size, 0);
  const ops: Record<string, Delta2Op[]> = {};
  const frames: Uint8Array[] = [];
  const stats: Delta2Stats = { copiedBlocks: 0, literalBytes: 0, frames: 0, framesWithDict: 0, frameBytes: 0, headerBytes: 0, bodyBytes: 0, totalBytes };
  const byPath = new Map(o.files.map((f) => [f.file.path, f]));
  for (const mf of o.manifest.files) {
    const f = byPath.get(mf.path);
    if (!f || f.file.sha256 !== mf.sha256) throw new Error(`encodeDelta2: no bytes for ${mf.path} as the manifest lists it`);
    const segs = segments(f, o.base, have);
    const list: Delta2Op[] = (ops[mf.path] = []);
    for (let i = 0; i < segs.length; i++) {
      const s = segs[i]!;
      if (s.kind === "copy") {
        list.push(["copy", s.path, s.first, s.count]);
        stats.copiedBlocks += s.count;
        continue;
      }
      const start = s.from * BLOCK_SIZE;
      const end = Math.min(mf.size, s.to * BLOCK_SIZE);
      stats.literalBytes += end - start;
      const a = anchors(segs, i, mf.path, o.base);
      for (let cs = start; cs < end; cs += DELTA2_FRAME_MAX) {
        const ce = Math.min(end, cs + DELTA2_FRAME_MAX);
        const range = a && o.baseBytes ? dictRange(a, cs, ce, o.margin ?? 128 * 1024, o.base.files[a.path]!.size) : null;
        const dict = range ? o.baseBytes!.read(a!.path, range[0], range[1]) : null;
        const data = f.read(cs, ce - cs);
        const frame = zstdCompressSync(data, {
          params: { [Z.ZSTD_c_compressionLevel]: dict ? level : (o.levelWithoutDict ?? 9), [Z.ZSTD_c_checksumFlag]: 1, [Z.ZSTD_c_contentSizeFlag]: 1 },
          ...(dict ? { dictionary: dict } : {}),
        });
        list.push(["zstd", ce - cs, frame.byteLength, dict ? [a!.path, range![0], range![1]] : null]);
        frames.push(frame);
        stats.frames += 1;
        stats.framesWithDict += dict ? 1 : 0;
        stats.frameBytes += frame.byteLength;
        if (stats.frameBytes > (o.maxBodyBytes ?? totalBytes / 4)) return null;
      }
    }
  }
  const header: Delta2Header = { format: DELTA2_FORMAT, base: o.base.release, block_size: BLOCK_SIZE, manifest: o.manifest, ops, ...(o.signature ? { signature: o.signature } : {}) };
  const headerFrame = zstdCompressSync(Buffer.from(JSON.stringify(header)), { params: { [Z.ZSTD_c_compressionLevel]: 19, [Z.ZSTD_c_contentSizeFlag]: 1 } });
  const len = new Uint8Array(4);
  new DataView(len.buffer).setUint32(0, headerFrame.byteLength, true);
  const body = Buffer.concat([DELTA2_MAGIC, len, headerFrame, ...frames]);
  stats.headerBytes = 8 + headerFrame.byteLength;
  stats.bodyBytes = body.byteLength;
  return { body, stats };
}

/**
 * A format-1 body (gzip(header line, literal blocks)) from the same inputs,
 * for an updater that does not accept format 2: the master still plans from
 * the executable and never packs the tarball for a delta. Null past
 * `maxLiteralBytes` (half the release).
 */
export function encodeDelta1(o: { manifest: Manifest; files: NewFile[]; base: BlockIndex; maxLiteralBytes?: number; signature?: string }): { body: Uint8Array; literalBytes: number } | null {
  const have = baseLookup(o.base);
  const total = o.files.reduce((s, f) => s + f.file.size, 0);
  const byPath = new Map(o.files.map((f) => [f.file.path, f]));
  const ops: Record<string, DeltaOp[]> = {};
  const literals: Uint8Array[] = [];
  let literalBytes = 0;
  for (const mf of o.manifest.files) {
    const f = byPath.get(mf.path);
    if (!f || f.file.sha256 !== mf.sha256) throw new Error(`encodeDelta1: no bytes for ${mf.path} as the manifest lists it`);
    ops[mf.path] = segments(f, o.base, have).map((s): DeltaOp => {
      if (s.kind === "copy") return ["copy", s.path, s.first, s.count];
      const start = s.from * BLOCK_SIZE;
      const end = Math.min(mf.size, s.to * BLOCK_SIZE);
      literals.push(f.read(start, end - start));
      literalBytes += end - start;
      return ["data", end - start];
    });
    if (literalBytes > (o.maxLiteralBytes ?? total / 2)) return null;
  }
  const header: DeltaHeader = { format: 1, base: o.base.release, block_size: BLOCK_SIZE, manifest: o.manifest, ops, ...(o.signature ? { signature: o.signature } : {}) };
  return { body: Bun.gzipSync(Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), ...literals]), { level: 6 }), literalBytes };
}
