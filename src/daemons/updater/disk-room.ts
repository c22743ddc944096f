/**
 * The disk preflight of an upload (DESIGN §13): before staging writes a byte,
 * what the release will take unpacked — told by a whole tarball's first entry
 * (its manifest) or by a delta's header, both read ahead from the stream and
 * then handed on unchanged — against the free space of the slot's file
 * system. Too little: 507 insufficient_storage naming both numbers, and
 * nothing written. (The upload's declared size is the compressed one, a
 * third of what lands on disk.) What cannot be read ahead is left to the gate.
 */
import { constants, gunzipSync, zstdDecompressSync } from "node:zlib";
import { DELTA2_HEADER_MAX, Delta2Header, type Delta2Op } from "../../protocol/delta2.ts";
import { isDelta2 } from "../../lib/delta2-decode.ts";
import { BLOCK_SIZE, DELTA_HEADER_MAX, DeltaHeader, type DeltaOp } from "../../protocol/delta.ts";
import { checkManifest, MANIFEST_MAX_BYTES, type Manifest, parseManifest } from "../../protocol/manifest.ts";
import { spaceAt } from "../../lib/disk.ts";
import { DecnetError } from "../../lib/errors.ts";
import { RELEASE_MANIFEST, type SlotPaths } from "../../lib/paths.ts";
import { readTarball } from "../../lib/tarball.ts";
import { Cleanups, type StageOptions, uploadChunks } from "./staging.ts";

/** Beyond the files and their block index: the manifest copy, history.json and the journal. */
export const RESERVE_BYTES = 1024 * 1024;
/** The most upload bytes read ahead looking for the manifest or header; past it the check is skipped. */
const PEEK_RAW_MAX = 4 * 1024 * 1024;
/** Decompress again only once this much more has arrived (a client sending 1-byte chunks costs no more). */
const PEEK_STEP = 16 * 1024;

/**
 * Bytes a release takes in its slot: each file rounded up to whole blocks
 * of the file system, less what the spare already holds in place of it
 * (`inPlace`: a delta rewrites the spare's file instead of writing a new
 * one), its block index (32 bytes a block, base64 in JSON), and RESERVE_BYTES.
 */
export function bytesNeeded(m: Manifest, fsBlock: number, inPlace: (path: string) => number = () => 0): number {
  const round = (n: number) => Math.ceil(Math.max(0, n) / fsBlock) * fsBlock;
  let total = RESERVE_BYTES;
  for (const f of m.files) {
    total += round(f.size - Math.min(inPlace(f.path), f.size));
    total += round(Math.ceil((Math.ceil(f.size / BLOCK_SIZE) * 32 * 4) / 3) + 256);
  }
  return total;
}

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

/** Refuses with 507 when the file system holding `dir` has less than `needed` bytes free. */
export function requireRoom(dir: string, needed: number): void {
  const s = spaceAt(dir);
  if (s.free_bytes >= needed) return;
  throw new DecnetError(
    "insufficient_storage",
    `not enough disk space for this release: it needs ${needed} bytes (${mb(needed)}), the install dir's file system has ${s.free_bytes} free (${mb(s.free_bytes)}); nothing was written`,
    { detail: { needed_bytes: needed, free_bytes: s.free_bytes, size_bytes: s.size_bytes } },
  );
}

/**
 * The first bytes of a gzip stream decompressed, at most `cap` of them;
 * null when even a short prefix does not decompress (then the gate says why).
 * A prefix that would exceed `cap` is cut back to the longest that does not.
 */
export function gunzipPrefix(raw: Uint8Array, cap: number): Uint8Array | null {
  if (raw[0] !== 0x1f || raw[1] !== 0x8b) return raw.subarray(0, cap); // a plain tar
  const at = (len: number): Uint8Array | "big" | null => {
    try {
      return gunzipSync(raw.subarray(0, len), { finishFlush: constants.Z_SYNC_FLUSH, maxOutputLength: cap });
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE" ? "big" : null;
    }
  };
  const whole = at(raw.length);
  if (whole !== "big") return whole ?? (raw.length < 64 ? new Uint8Array(0) : null);
  let lo = 0;
  let hi = raw.length;
  let best: Uint8Array = new Uint8Array(0);
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    const r = at(mid);
    if (r === "big") hi = mid;
    else {
      lo = mid;
      if (r) best = r;
    }
  }
  return best;
}

type Find<T> = { found: T } | "more" | "give-up";

/**
 * Reads the upload until `find` says what it needed (or gives up), under
 * the staging's limits (size, stall, client gone), and returns that with a
 * stream that replays everything read, then the rest.
 */
async function peek<T>(body: ReadableStream<Uint8Array>, o: StageOptions, cap: number, find: (plain: Uint8Array, full: boolean) => Promise<Find<T>> | Find<T>, decode: (raw: Uint8Array, cap: number) => Uint8Array | null = gunzipPrefix): Promise<{ found: T | null; body: ReadableStream<Uint8Array> }> {
  // The reader, its stall timer and abort listener: released when the replay ends or is dropped.
  const scope = new Cleanups();
  const it = uploadChunks(scope, body, o, { n: 0 });
  const seen: Uint8Array[] = [];
  let raw = 0;
  let tried = 0;
  let ended = false;
  let found: T | null = null;
  try {
    for (;;) {
      const r = await it.next();
      if (r.done) ended = true;
      else {
        seen.push(r.value);
        raw += r.value.byteLength;
      }
      if (!ended && raw - tried < PEEK_STEP) continue;
      tried = raw;
      const plain = decode(Buffer.concat(seen), cap);
      const f = plain === null ? "give-up" : await find(plain, plain.byteLength >= cap || ended);
      if (f !== "more") {
        found = f === "give-up" ? null : f.found;
        break;
      }
      if (ended || raw >= PEEK_RAW_MAX) break;
    }
  } catch (e) {
    await scope.run();
    throw e;
  }
  let i = 0;
  const replay = new ReadableStream<Uint8Array>({
    async pull(ctl) {
      if (i < seen.length) return ctl.enqueue(seen[i++]!);
      const r = ended ? { done: true as const } : await it.next();
      if (r.done) {
        ctl.close();
        await scope.run();
      } else ctl.enqueue(r.value);
    },
    async cancel() {
      await scope.run();
    },
  });
  return { found, body: replay };
}

/** The manifest, if the plain tar prefix's first entry is a whole manifest.json. */
async function manifestIn(plain: Uint8Array, full: boolean): Promise<Find<Manifest>> {
  const got: { text: string | null } = { text: null };
  let first = true;
  let wrong = false;
  await readTarball((async function* () { yield plain; })(), (e) => {
    if (!first) return e.skip();
    first = false;
    if (e.path !== RELEASE_MANIFEST || e.size > MANIFEST_MAX_BYTES) {
      wrong = true;
      return e.skip();
    }
    const chunks: Uint8Array[] = [];
    e.onData((c) => chunks.push(c));
    e.onEnd(() => {
      got.text = Buffer.concat(chunks).toString("utf8");
    });
  }).catch(() => {}); // a prefix ends mid-archive by design
  if (wrong) return "give-up";
  if (got.text === null) return full ? "give-up" : "more";
  const m = parseManifest(got.text);
  return m.ok ? { found: m.manifest } : "give-up";
}

/** A whole tarball's manifest (its first entry) read ahead, null when it cannot be; and the upload to stage. */
export function peekRelease(body: ReadableStream<Uint8Array>, o: StageOptions): Promise<{ found: Manifest | null; body: ReadableStream<Uint8Array> }> {
  return peek(body, o, MANIFEST_MAX_BYTES + 64 * 1024, manifestIn);
}

/** A delta's header read ahead, null when it cannot be; and the upload to stage. */
export function peekDelta(body: ReadableStream<Uint8Array>, o: StageOptions): Promise<{ found: DeltaHeader | null; body: ReadableStream<Uint8Array> }> {
  return peek(body, o, DELTA_HEADER_MAX + 1, (plain, full): Find<DeltaHeader> => {
    const nl = plain.indexOf(0x0a);
    if (nl < 0) return full ? "give-up" : "more";
    try {
      const h = DeltaHeader.safeParse(JSON.parse(Buffer.from(plain.subarray(0, nl)).toString("utf8")));
      return h.success && checkManifest(h.data.manifest).ok ? { found: h.data } : "give-up";
    } catch {
      return "give-up";
    }
  });
}

/**
 * A whole tarball's preflight: its manifest read ahead, the room checked in
 * `paths.releases`' file system. Returns the upload to stage.
 */
export async function roomForRelease(paths: SlotPaths, body: ReadableStream<Uint8Array>, o: StageOptions): Promise<ReadableStream<Uint8Array>> {
  const p = await peekRelease(body, o);
  if (p.found) await check(paths, p.body, bytesNeeded(p.found, spaceAt(paths.releases).block_bytes));
  return p.body;
}

/**
 * A format-2 delta's header read ahead (magic, length, the zstd header frame;
 * the body itself is not compressed), null when it cannot be: only to size
 * the room, the decoder checks it again in full.
 */
export function peekDelta2(body: ReadableStream<Uint8Array>, o: StageOptions): Promise<{ found: Delta2Header | null; body: ReadableStream<Uint8Array> }> {
  const raw = (b: Uint8Array, cap: number) => b.subarray(0, cap);
  return peek(body, o, DELTA2_HEADER_MAX + 8, (b, full): Find<Delta2Header> => {
    if (b.byteLength < 8) return full ? "give-up" : "more";
    if (!isDelta2(b)) return "give-up";
    const len = new DataView(b.buffer, b.byteOffset, 8).getUint32(4, true);
    if (len > DELTA2_HEADER_MAX) return "give-up";
    if (b.byteLength < 8 + len) return full ? "give-up" : "more";
    try {
      const text = zstdDecompressSync(b.subarray(8, 8 + len), { maxOutputLength: DELTA2_HEADER_MAX });
      const h = Delta2Header.safeParse(JSON.parse(Buffer.from(text).toString("utf8")));
      return h.success && checkManifest(h.data.manifest).ok ? { found: h.data } : "give-up";
    } catch {
      return "give-up";
    }
  }, raw);
}

/** roomForDelta for a format-2 body. */
export async function roomForDelta2(paths: SlotPaths, body: ReadableStream<Uint8Array>, o: StageOptions, inPlace: (path: string, ops: Delta2Op[]) => number): Promise<ReadableStream<Uint8Array>> {
  const p = await peekDelta2(body, o);
  const h = p.found;
  if (h) await check(paths, p.body, bytesNeeded(h.manifest, spaceAt(paths.releases).block_bytes, (path) => inPlace(path, h.ops[path] ?? [])));
  return p.body;
}

/**
 * A delta's preflight: its header read ahead, the room checked — a file the
 * delta rewrites in the spare's copy (`inPlace(path, ops)`: its bytes, else
 * 0) needs only what it grows by. Returns the upload to stage.
 */
export async function roomForDelta(paths: SlotPaths, body: ReadableStream<Uint8Array>, o: StageOptions, inPlace: (path: string, ops: DeltaOp[]) => number): Promise<ReadableStream<Uint8Array>> {
  const p = await peekDelta(body, o);
  const h = p.found;
  if (h) await check(paths, p.body, bytesNeeded(h.manifest, spaceAt(paths.releases).block_bytes, (path) => inPlace(path, h.ops[path] ?? [])));
  return p.body;
}

/** requireRoom, dropping the rest of the upload when it refuses. */
async function check(paths: SlotPaths, body: ReadableStream<Uint8Array>, needed: number): Promise<void> {
  try {
    requireRoom(paths.releases, needed);
  } catch (e) {
    await body.cancel().catch(() => {});
    throw e;
  }
}
