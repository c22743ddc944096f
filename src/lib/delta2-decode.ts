/**
 * Reading a format-2 delta body on the worker: every size, range and frame is
 * checked against the header and the base before a byte is produced, and the
 * new files come out in order as base-block copies and decompressed bytes,
 * holding at most one frame, its dictionary and its output at a time.
 */
import { zstdDecompressSync } from "node:zlib";
import { BLOCK_SIZE, blockLen } from "../protocol/delta.ts";
import {
  DELTA2_DICT_MAX,
  DELTA2_FRAME_BOUND,
  DELTA2_FRAME_MAX,
  DELTA2_HEADER_DEPTH,
  DELTA2_HEADER_MAX,
  DELTA2_MAGIC,
  DELTA2_WINDOW_MAX,
  Delta2Header,
  type ZstdOp,
} from "../protocol/delta2.ts";
import { type ManifestFile, releaseId } from "../protocol/manifest.ts";
import { DecnetError } from "./errors.ts";
import { ZstdFrameError, zstdFrameInfo } from "./zstd-frame.ts";
import { jsonDepth } from "./json-depth.ts";

/** Why a format-2 body was refused (the error's `detail.reason`). */
export type Delta2Reason =
  | "bad_magic"
  | "header_too_large"
  | "header_too_deep"
  | "bad_header"
  | "base_mismatch"
  | "release_mismatch"
  | "ops_mismatch"
  | "copy_outside_base"
  | "dict_outside_base"
  | "truncated_body"
  | "truncated_frame"
  | "bad_frame"
  | "size_mismatch"
  | "trailing_bytes"
  | "base_unavailable";

/**
 * A refused body: `bad_archive` (400), except what only this worker's base
 * explains (a file or block size it lacks): `delta_unavailable`, so the
 * master sends the release whole.
 */
export class Delta2Error extends DecnetError {
  constructor(readonly reason: Delta2Reason, message: string) {
    super(reason === "base_unavailable" ? "delta_unavailable" : "bad_archive", message, { detail: { reason } });
  }
}

/** What the decoder needs of the worker's base release. */
export interface Delta2Base {
  id: string;
  /** The base's files (its manifest's path and size). */
  files: ReadonlyArray<Pick<ManifestFile, "path" | "size">>;
  /** Exactly `length` bytes of base file `path` at `offset`; called only inside the file's size. */
  read(path: string, offset: number, length: number): Uint8Array;
}

export type Delta2Event =
  /** Start writing this file of the new release. */
  | { type: "file"; file: ManifestFile }
  /** Copy whole blocks `first`..`first+count` of base file `path` (checked inside it). */
  | { type: "copy"; path: string; first: number; count: number }
  /** The next decompressed bytes of the current file (at most DELTA2_FRAME_MAX). */
  | { type: "bytes"; data: Uint8Array }
  /** The current file has had all its bytes. */
  | { type: "end"; file: ManifestFile };

/** Exact reads from a byte stream, never holding more than the read asked for plus one chunk. */
class Reader {
  private buf: Uint8Array = new Uint8Array(0);
  private done = false;
  constructor(private it: AsyncIterator<Uint8Array>) {}

  /** The next `n` bytes, contiguous; `what` names them in the error when the body ends first. */
  async exact(n: number, what: string): Promise<Uint8Array> {
    while (this.buf.byteLength < n) {
      if (this.done) throw new Delta2Error("truncated_body", `delta body ends inside ${what} (${n - this.buf.byteLength} bytes short)`);
      const r = await this.it.next();
      if (r.done) this.done = true;
      else this.buf = this.buf.byteLength ? Buffer.concat([this.buf, r.value]) : r.value;
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  async atEnd(): Promise<boolean> {
    while (this.buf.byteLength === 0) {
      if (this.done) return true;
      const r = await this.it.next();
      if (r.done) this.done = true;
      else this.buf = r.value;
    }
    return false;
  }
}

/** Checks a frame's structure against its op, then decompresses it against `dict`. */
function inflate(frame: Uint8Array, op: ZstdOp, dict: Uint8Array | null): Uint8Array {
  const [, raw] = op;
  let info;
  try {
    info = zstdFrameInfo(frame);
  } catch (e) {
    if (e instanceof ZstdFrameError) throw new Delta2Error(e.problem === "truncated" ? "truncated_frame" : "bad_frame", e.message);
    throw e;
  }
  if (info.end !== frame.byteLength) throw new Delta2Error("bad_frame", `${frame.byteLength - info.end} bytes after the zstd frame in its slot`);
  if (info.contentSize !== raw) throw new Delta2Error("size_mismatch", `zstd frame says ${info.contentSize ?? "no"} bytes, the header ${raw}`);
  if (!info.checksum) throw new Delta2Error("bad_frame", "zstd frame has no checksum");
  if (info.dictId !== 0) throw new Delta2Error("bad_frame", "zstd frame names a dictionary id");
  if (info.windowSize > DELTA2_WINDOW_MAX) throw new Delta2Error("bad_frame", `zstd window of ${info.windowSize} bytes`);
  let out: Uint8Array;
  try {
    out = zstdDecompressSync(frame, { maxOutputLength: raw, ...(dict ? { dictionary: dict } : {}) });
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "ERR_BUFFER_TOO_LARGE") throw new Delta2Error("size_mismatch", `zstd frame decompresses to more than the header's ${raw} bytes`);
    if (code === "ZSTD_error_checksum_wrong") throw new Delta2Error("bad_frame", "zstd frame does not decompress against this base (checksum)");
    throw new Delta2Error("bad_frame", `zstd frame does not decompress: ${(e as Error).message}`);
  }
  if (out.byteLength !== raw) throw new Delta2Error("size_mismatch", `zstd frame decompresses to ${out.byteLength} bytes, the header says ${raw}`);
  return out;
}

/**
 * Every op against the manifest and the base: sizes add up to each file's,
 * only the file's last piece is short of a whole block, copies and
 * dictionaries lie inside base files.
 */
function checkOps(h: Delta2Header, base: Delta2Base): void {
  const baseSize = new Map(base.files.map((f) => [f.path, f.size]));
  for (const p of Object.keys(h.ops)) if (!h.manifest.files.some((f) => f.path === p)) throw new Delta2Error("ops_mismatch", `ops for ${p}, which the manifest does not list`);
  for (const f of h.manifest.files) {
    const ops = h.ops[f.path];
    if (!ops) throw new Delta2Error("ops_mismatch", `no ops for ${f.path}`);
    let total = 0;
    for (const op of ops) {
      if (total % BLOCK_SIZE !== 0) throw new Delta2Error("ops_mismatch", `ops for ${f.path} continue after a short block`);
      if (op[0] === "copy") {
        const size = baseSize.get(op[1]);
        if (size === undefined) throw new Delta2Error("base_unavailable", `the base has no ${op[1]}`);
        const blocks = Math.ceil(size / BLOCK_SIZE);
        if (op[2] + op[3] > blocks) throw new Delta2Error("copy_outside_base", `copy of blocks ${op[2]}..${op[2] + op[3]} past the end of ${op[1]} (${blocks} blocks)`);
        total += op[3] === 0 ? 0 : (op[3] - 1) * BLOCK_SIZE + blockLen(size, op[2] + op[3] - 1);
      } else {
        const dict = op[3];
        if (dict) {
          const size = baseSize.get(dict[0]);
          if (size === undefined) throw new Delta2Error("base_unavailable", `the base has no ${dict[0]}`);
          if (dict[1] + dict[2] > size) throw new Delta2Error("dict_outside_base", `dictionary ${dict[1]}+${dict[2]} past the end of ${dict[0]} (${size} bytes)`);
        }
        total += op[1];
      }
      if (total > f.size) break;
    }
    if (total !== f.size) throw new Delta2Error("ops_mismatch", `ops for ${f.path} make ${total > f.size ? "more than " : ""}${total} bytes, the manifest says ${f.size}`);
  }
}

export interface Delta2Reader {
  header: Delta2Header;
  /** The new release's files, in manifest order, as copies and bytes; then checks the body is used up. */
  events(): AsyncGenerator<Delta2Event>;
}

/** True when a body starts as a format-2 delta (a format-1 body starts 1f 8b). */
export const isDelta2 = (head: Uint8Array) => head.byteLength >= 4 && DELTA2_MAGIC.every((b, i) => head[i] === b);

/**
 * Reads and checks the header of a format-2 body against `base`. The caller
 * still verifies what it writes (block digests, sha256, release id), as for
 * any upload: this only refuses what cannot be a delta of this base.
 */
export async function openDelta2(body: AsyncIterable<Uint8Array>, base: Delta2Base): Promise<Delta2Reader> {
  const reader = new Reader(body[Symbol.asyncIterator]());
  if (!isDelta2(await reader.exact(4, "its magic"))) throw new Delta2Error("bad_magic", "not a format-2 delta");
  const lenBytes = await reader.exact(4, "the header length");
  const len = new DataView(lenBytes.buffer, lenBytes.byteOffset, 4).getUint32(0, true);
  if (len > DELTA2_HEADER_MAX) throw new Delta2Error("header_too_large", `delta header frame of ${len} bytes`);
  const frame = await reader.exact(len, "the header");
  let text: string;
  try {
    const info = zstdFrameInfo(frame);
    if (info.end !== frame.byteLength) throw new Delta2Error("bad_header", "bytes after the header frame");
    if (info.contentSize === null || info.contentSize > DELTA2_HEADER_MAX) throw new Delta2Error("header_too_large", `delta header of ${info.contentSize ?? "unstated"} bytes, at most ${DELTA2_HEADER_MAX}`);
    text = new TextDecoder("utf-8", { fatal: true }).decode(zstdDecompressSync(frame, { maxOutputLength: info.contentSize }));
  } catch (e) {
    if (e instanceof Delta2Error) throw e;
    if (e instanceof ZstdFrameError) throw new Delta2Error(e.problem === "truncated" ? "truncated_frame" : "bad_header", `delta header: ${e.message}`);
    throw new Delta2Error("bad_header", `delta header does not decompress: ${(e as Error).message}`);
  }
  if (jsonDepth(text, DELTA2_HEADER_DEPTH) > DELTA2_HEADER_DEPTH) throw new Delta2Error("header_too_deep", `delta header nests deeper than ${DELTA2_HEADER_DEPTH}`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Delta2Error("bad_header", "delta header is not JSON");
  }
  const parsed = Delta2Header.safeParse(raw);
  if (!parsed.success) throw new Delta2Error("bad_header", `invalid delta header: ${parsed.error.issues.slice(0, 3).map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  const h = parsed.data;
  if (h.base !== base.id) throw new Delta2Error("base_mismatch", `delta is against ${h.base.slice(0, 12)}, not ${base.id.slice(0, 12)}`);
  if (h.block_size !== BLOCK_SIZE) throw new Delta2Error("base_unavailable", `delta uses ${h.block_size}-byte blocks, this updater ${BLOCK_SIZE}`);
  if (releaseId(h.manifest.files) !== h.manifest.id) throw new Delta2Error("release_mismatch", "the manifest's id does not match its files");
  checkOps(h, base);

  async function* events(): AsyncGenerator<Delta2Event> {
    for (const f of h.manifest.files) {
      yield { type: "file", file: f };
      for (const op of h.ops[f.path]!) {
        if (op[0] === "copy") {
          yield { type: "copy", path: op[1], first: op[2], count: op[3] };
          continue;
        }
        if (op[1] > DELTA2_FRAME_MAX || op[2] > DELTA2_FRAME_BOUND || (op[3] && op[3][2] > DELTA2_DICT_MAX)) throw new Delta2Error("bad_header", "op over the limits"); // the schema's, kept next to the reads
        const frame = await reader.exact(op[2], `a ${op[2]}-byte zstd frame`);
        const dict = op[3] ? base.read(op[3][0], op[3][1], op[3][2]) : null;
        yield { type: "bytes", data: inflate(frame, op, dict) };
      }
      yield { type: "end", file: f };
    }
    if (!(await reader.atEnd())) throw new Delta2Error("trailing_bytes", "delta body has bytes after its last frame");
  }
  return { header: h, events };
}
