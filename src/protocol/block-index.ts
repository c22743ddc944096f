/**
 * The compact block index: binary, 8 bytes of each block's sha256, and only
 * the 1 MiB groups that differ from what the master already holds. A false
 * match of truncated digests only makes the worker's sha256 check fail, and
 * the master then sends the release whole.
 */
import { BLOCK_SIZE } from "./delta.ts";
import { ReleasePath } from "./manifest.ts";

/** Blocks per group: 64 × 16 KiB = 1 MiB, the updater's resume-point step. */
export const GROUP_BLOCKS = 64;
/**
 * Digest bytes kept per block. With ~6,700 blocks on each side a push makes
 * ~4.5e7 comparisons: at 64 bits the chance of any false match is ~2e-12 (at
 * 32 bits it would be ~1%).
 */
export const INDEX_WIDTH = 8;
const GROUP_DIGEST = 8;
const MAX_FILES = 64;
const MAX_FILE_BYTES = 2 ** 32; // the manifest's limit
const INDEX_MAGIC = [0x44, 0x4e, 0x58, 0x31]; // "DNX1"
const QUERY_MAGIC = [0x44, 0x4e, 0x51, 0x31]; // "DNQ1"

/** A release's block index: per file its size and `width` bytes of each block's sha256. */
export interface BlockIndex {
  release: string;
  width: number;
  files: Record<string, { size: number; digests: Uint8Array }>;
}

/** The groups of a file the master already holds the digests of (its own new release's). */
export type IndexQuery = Record<string, Uint8Array>;

export class IndexFormatError extends Error {
  override readonly name = "IndexFormatError";
}

export const blockCount = (size: number) => Math.ceil(size / BLOCK_SIZE);
const groupCount = (size: number) => Math.ceil(blockCount(size) / GROUP_BLOCKS);

/** The first `width` bytes of each `from`-byte digest. */
export function truncateDigests(digests: Uint8Array, width = INDEX_WIDTH, from = 32): Uint8Array {
  if (width === from) return digests;
  if (width > from) throw new Error(`cannot widen ${from}-byte digests to ${width}`);
  const n = digests.byteLength / from;
  const out = new Uint8Array(n * width);
  for (let i = 0; i < n; i++) out.set(digests.subarray(i * from, i * from + width), i * width);
  return out;
}

/** 8 bytes per group of GROUP_BLOCKS blocks: sha256 over the group's full 32-byte digests. */
export function groupDigests(full: Uint8Array): Uint8Array {
  const blocks = full.byteLength / 32;
  const groups = Math.ceil(blocks / GROUP_BLOCKS);
  const out = new Uint8Array(groups * GROUP_DIGEST);
  for (let g = 0; g < groups; g++) {
    const h = new Bun.CryptoHasher("sha256");
    h.update(full.subarray(g * GROUP_BLOCKS * 32, Math.min(blocks, (g + 1) * GROUP_BLOCKS) * 32));
    out.set(new Uint8Array(h.digest()).subarray(0, GROUP_DIGEST), g * GROUP_DIGEST);
  }
  return out;
}

class Out {
  parts: Uint8Array[] = [];
  bytes(b: Uint8Array | number[]) {
    this.parts.push(b instanceof Uint8Array ? b : new Uint8Array(b));
  }
  u8(n: number) {
    this.bytes([n]);
  }
  u32(n: number) {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n, true);
    this.bytes(b);
  }
  text(s: string) {
    const b = new TextEncoder().encode(s);
    this.u8(b.byteLength);
    this.bytes(b);
  }
  done(): Uint8Array {
    return Buffer.concat(this.parts);
  }
}

class In {
  at = 0;
  constructor(private b: Uint8Array) {}
  take(n: number): Uint8Array {
    if (this.at + n > this.b.byteLength) throw new IndexFormatError(`index ends at byte ${this.b.byteLength}, ${this.at + n} needed`);
    const r = this.b.subarray(this.at, this.at + n);
    this.at += n;
    return r;
  }
  u8 = () => this.take(1)[0]!;
  u32 = () => {
    const b = this.take(4);
    return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
  };
  text(): string {
    return new TextDecoder("utf-8", { fatal: true }).decode(this.take(this.u8()));
  }
  magic(m: number[], what: string) {
    const got = this.take(m.length);
    if (!m.every((x, k) => got[k] === x)) throw new IndexFormatError(`not a ${what}`);
  }
  end() {
    if (this.at !== this.b.byteLength) throw new IndexFormatError(`${this.b.byteLength - this.at} bytes after the end`);
  }
}

const path = (p: string) => {
  if (!ReleasePath.safeParse(p).success) throw new IndexFormatError(`bad file name ${JSON.stringify(p.slice(0, 40))}`);
  return p;
};

/** The master's question: for each file of its new release, its group digests. */
export function encodeIndexQuery(q: IndexQuery): Uint8Array {
  const o = new Out();
  o.bytes(QUERY_MAGIC);
  const files = Object.entries(q);
  o.u8(files.length);
  for (const [p, groups] of files) {
    o.text(p);
    o.u32(groups.byteLength / GROUP_DIGEST);
    o.bytes(groups);
  }
  return o.done();
}

export function decodeIndexQuery(b: Uint8Array): IndexQuery {
  const i = new In(b);
  i.magic(QUERY_MAGIC, "block index query");
  const n = i.u8();
  if (n > MAX_FILES) throw new IndexFormatError(`${n} files, at most ${MAX_FILES}`);
  const q: IndexQuery = {};
  for (let k = 0; k < n; k++) {
    const p = path(i.text());
    const groups = i.u32();
    if (groups > groupCount(MAX_FILE_BYTES)) throw new IndexFormatError(`${groups} groups for ${p}`);
    if (p in q) throw new IndexFormatError(`${p} twice`);
    q[p] = i.take(groups * GROUP_DIGEST);
  }
  i.end();
  return q;
}

/**
 * The worker's answer from its own index (full 32-byte digests): every file's
 * size, and the truncated digests of each group the query does not already
 * match (all of them without a query). Also the master's cache file, at the
 * width its index has.
 */
export function encodeCompactIndex(index: BlockIndex, query: IndexQuery | null = null, width = Math.min(INDEX_WIDTH, index.width)): Uint8Array {
  if (query && index.width !== 32) throw new Error("answering a query needs full digests");
  const o = new Out();
  o.bytes(INDEX_MAGIC);
  o.u8(width);
  o.bytes(Buffer.from(index.release, "hex"));
  const files = Object.entries(index.files);
  o.u8(files.length);
  for (const [p, f] of files) {
    o.text(p);
    o.u32(Math.floor(f.size / 2 ** 32));
    o.u32(f.size % 2 ** 32);
    const groups = groupCount(f.size);
    const mine = query ? groupDigests(f.digests) : null;
    const theirs = query?.[p];
    const send = new Uint8Array(Math.ceil(groups / 8));
    const sent: Uint8Array[] = [];
    for (let g = 0; g < groups; g++) {
      const same = theirs && mine && theirs.byteLength >= (g + 1) * GROUP_DIGEST && Buffer.compare(theirs.subarray(g * GROUP_DIGEST, (g + 1) * GROUP_DIGEST), mine.subarray(g * GROUP_DIGEST, (g + 1) * GROUP_DIGEST)) === 0;
      if (same) continue;
      send[g >> 3]! |= 1 << (g & 7);
      const w = index.width;
      sent.push(truncateDigests(f.digests.subarray(g * GROUP_BLOCKS * w, Math.min(blockCount(f.size), (g + 1) * GROUP_BLOCKS) * w), width, w));
    }
    o.bytes(send);
    for (const s of sent) o.bytes(s);
  }
  return o.done();
}

/**
 * The master reads the answer; the groups it left out are filled from
 * `known`, the full digests of the files it asked with (same path, same
 * group). Bounded: at most 64 files of 4 GiB, nothing after the end; with
 * `release`, an index of another release is refused.
 */
export function decodeCompactIndex(b: Uint8Array, known: Record<string, Uint8Array> | null = null, release?: string): BlockIndex {
  const i = new In(b);
  i.magic(INDEX_MAGIC, "compact block index");
  const width = i.u8();
  if (width < INDEX_WIDTH || width > 32) throw new IndexFormatError(`digest width ${width}`);
  const id = Buffer.from(i.take(32)).toString("hex");
  if (release !== undefined && id !== release) throw new IndexFormatError(`index of release ${id.slice(0, 12)}, not ${release.slice(0, 12)}`);
  const n = i.u8();
  if (n > MAX_FILES) throw new IndexFormatError(`${n} files, at most ${MAX_FILES}`);
  const files: BlockIndex["files"] = {};
  for (let k = 0; k < n; k++) {
    const p = path(i.text());
    if (p in files) throw new IndexFormatError(`${p} twice`);
    const size = i.u32() * 2 ** 32 + i.u32();
    if (size > MAX_FILE_BYTES) throw new IndexFormatError(`${p} of ${size} bytes`);
    const blocks = blockCount(size);
    const groups = groupCount(size);
    const bitmap = i.take(Math.ceil(groups / 8));
    const digests = new Uint8Array(blocks * width);
    for (let g = 0; g < groups; g++) {
      const first = g * GROUP_BLOCKS;
      const count = Math.min(blocks, first + GROUP_BLOCKS) - first;
      if (bitmap[g >> 3]! & (1 << (g & 7))) {
        digests.set(i.take(count * width), first * width);
        continue;
      }
      const mine = known?.[p];
      if (!mine || mine.byteLength < (first + count) * 32) throw new IndexFormatError(`group ${g} of ${p} left out, but it was not asked about`);
      digests.set(truncateDigests(mine.subarray(first * 32, (first + count) * 32), width), first * width);
    }
    files[p] = { size, digests };
  }
  i.end();
  return { release: id, width, files };
}
