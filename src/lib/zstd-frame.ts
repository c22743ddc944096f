/**
 * Structure check of one zstd frame (RFC 8878 §3.1.1) before it is
 * decompressed: Bun's zstdDecompressSync returns what it could of a truncated
 * frame without an error, so a frame is walked block by block first.
 */

export interface FrameInfo {
  /** Frame_Content_Size, or null when the frame does not state it. */
  contentSize: number | null;
  windowSize: number;
  checksum: boolean;
  dictId: number;
  /** Offset just past the frame. */
  end: number;
}

/** Why a frame is refused. */
export type FrameProblem = "not_zstd" | "reserved_bit" | "truncated" | "reserved_block" | "block_too_large";

export class ZstdFrameError extends Error {
  override readonly name = "ZstdFrameError";
  constructor(readonly problem: FrameProblem, message: string) {
    super(message);
  }
}

const MAGIC = 0xfd2fb528;
const BLOCK_MAX = 128 * 1024;

/** Walks the frame starting at `buf[0]`; throws ZstdFrameError if it is not one whole frame there. */
export function zstdFrameInfo(buf: Uint8Array): FrameInfo {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const need = (n: number, at: number) => {
    if (at + n > buf.byteLength) throw new ZstdFrameError("truncated", `zstd frame cut off at byte ${buf.byteLength} (needs ${at + n})`);
  };
  need(5, 0);
  if (dv.getUint32(0, true) !== MAGIC) throw new ZstdFrameError("not_zstd", "not a zstd frame");
  const fhd = buf[4]!;
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  if ((fhd >> 3) & 1) throw new ZstdFrameError("reserved_bit", "zstd frame header sets a reserved bit");
  const checksum = ((fhd >> 2) & 1) === 1;
  const dictIdLen = [0, 1, 2, 4][fhd & 3]!;
  const fcsLen = fcsFlag === 0 ? single : [0, 2, 4, 8][fcsFlag]!;
  let at = 5;
  let windowSize = 0;
  if (!single) {
    need(1, at);
    const wd = buf[at++]!;
    const base = 2 ** (10 + (wd >> 3));
    windowSize = base + (base / 8) * (wd & 7);
  }
  need(dictIdLen + fcsLen, at);
  let dictId = 0;
  for (let i = 0; i < dictIdLen; i++) dictId += buf[at + i]! * 2 ** (8 * i);
  at += dictIdLen;
  let contentSize: number | null = null;
  if (fcsLen > 0) {
    let v = 0;
    for (let i = 0; i < fcsLen; i++) v += buf[at + i]! * 2 ** (8 * i);
    contentSize = fcsLen === 2 ? v + 256 : v;
    at += fcsLen;
  }
  if (single) windowSize = contentSize ?? 0;
  const blockMax = Math.min(windowSize, BLOCK_MAX);
  for (;;) {
    need(3, at);
    const h = buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16);
    at += 3;
    const last = h & 1;
    const type = (h >> 1) & 3;
    const size = h >>> 3;
    if (type === 3) throw new ZstdFrameError("reserved_block", "zstd frame has a reserved block type");
    if (size > blockMax) throw new ZstdFrameError("block_too_large", `zstd block of ${size} bytes, more than ${blockMax}`);
    const stored = type === 1 ? 1 : size; // RLE stores one byte
    need(stored, at);
    at += stored;
    if (last) break;
  }
  if (checksum) {
    need(4, at);
    at += 4;
  }
  return { contentSize, windowSize, checksum, dictId, end: at };
}
