/**
 * Staging from a delta upload: rebuild each file of the new release from the
 * base release's blocks and the literal bytes that follow the header, through
 * the same VerifiedFile as a full upload (size, sha256, mode, release id).
 * What cannot be rebuilt here (base gone, other block size) is
 * `delta_unavailable`, which tells the master to send the release in full.
 */
import { openSync, readSync } from "node:fs";
import { join } from "node:path";
import { BLOCK_SIZE, blockLen, DELTA_HEADER_MAX, type DeltaHeader, DeltaHeader as HeaderSchema, type DeltaOp } from "../../protocol/delta.ts";
import { checkManifest, type Manifest, type ManifestFile } from "../../protocol/manifest.ts";
import { ByteReader } from "../../lib/byte-reader.ts";
import { DecnetError } from "../../lib/errors.ts";
import type { SlotPaths } from "../../lib/paths.ts";
import type { BaseRelease } from "./base-release.ts";
import type { Digests } from "./block-index.ts";
import type { FilePoints } from "./resume-cache.ts";
import { CHECKPOINT } from "./resumable-hash.ts";
import type { Spare } from "./spare.ts";
import { bad, MAX_RELEASE_BYTES, plainChunks, stage, type StageOptions, type Staged, type Staging, uploadBody } from "./staging.ts";
import { type Prefix, VerifiedFile } from "./verified-file.ts";
import { roomForDelta } from "./disk-room.ts";
import { manifestTargetCheck } from "./target-gate.ts";
import { jsonDepth } from "../../lib/json-depth.ts";

const unavailable = (message: string) => new DecnetError("delta_unavailable", message);

const COPY_CHUNK = BLOCK_SIZE * 64;

/** Nesting a delta header needs: {ops: {path: [[op, ...]]}, manifest: {files: [{git...}]}} is 4 deep. */
const HEADER_MAX_DEPTH = 16;

/** Reads the header and checks it, and every op against the sizes, before a byte is written. */
async function readHeader(reader: ByteReader, base: BaseRelease): Promise<{ manifest: Manifest; ops: DeltaHeader["ops"]; signature: Uint8Array | null }> {
  const line = await reader.line(DELTA_HEADER_MAX, () => bad(`delta header is larger than ${DELTA_HEADER_MAX} bytes`));
  if (line === null) throw bad("truncated delta: it ends inside its header");
  // Refused before parsing: a deeply nested header costs the parser and the schema stack and time.
  if (jsonDepth(line, HEADER_MAX_DEPTH) > HEADER_MAX_DEPTH) throw bad(`delta header nests deeper than ${HEADER_MAX_DEPTH} levels`);
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    throw bad("delta header is not JSON");
  }
  const parsed = HeaderSchema.safeParse(raw);
  if (!parsed.success) throw bad("invalid delta header", parsed.error.issues.slice(0, 5).map((i) => `${i.path.join(".")}: ${i.message}`));
  const h = parsed.data;
  if (h.base !== base.id) throw bad(`delta header names base ${h.base.slice(0, 12)}, the request ${base.id.slice(0, 12)}`);
  if (h.block_size !== BLOCK_SIZE) throw unavailable(`delta uses ${h.block_size}-byte blocks, this updater ${BLOCK_SIZE}`);
  const checked = checkManifest(h.manifest);
  if (!checked.ok) throw bad(checked.problem, checked.issues);
  const m = checked.manifest;
  if (m.files.reduce((s, f) => s + f.size, 0) > MAX_RELEASE_BYTES) throw bad(`release declares more than ${MAX_RELEASE_BYTES} bytes`);
  for (const p of Object.keys(h.ops)) if (!m.files.some((f) => f.path === p)) throw bad(`refused: ops for ${p}, which is not listed in the manifest`);
  for (const f of m.files) checkOps(f, h.ops[f.path], base);
  return { manifest: m, ops: h.ops, signature: h.signature === undefined ? null : new TextEncoder().encode(h.signature) };
}

/** The ops for `f` must make exactly its size, from whole base blocks that exist. */
function checkOps(f: ManifestFile, ops: DeltaOp[] | undefined, base: BaseRelease): void {
  if (!ops) throw bad(`no ops for ${f.path}`);
  let total = 0;
  for (const op of ops) {
    // Every block but the file's last is whole: a short block may only end the file.
    if (total % BLOCK_SIZE !== 0) throw bad(`ops for ${f.path} continue after a short block`);
    if (op[0] === "data") total += op[1];
    else {
      const bf = base.file(op[1]);
      if (!bf) throw unavailable(`base release has no ${op[1]}`);
      const blocks = Math.ceil(bf.size / BLOCK_SIZE);
      if (op[2] + op[3] > blocks) throw bad(`copy of blocks ${op[2]}..${op[2] + op[3]} past the end of ${op[1]} (${blocks} blocks)`);
      for (let i = op[2]; i < op[2] + op[3]; i++) total += blockLen(bf.size, i);
    }
    if (total > f.size) break;
  }
  if (total !== f.size) throw bad(`ops for ${f.path} make ${total} bytes, the manifest says ${f.size}`);
}

/**
 * The longest start of `path` that is an unchanged copy of the same file in
 * the base (leading copy ops from block 0 on, in order) and that the base's
 * resume points and block digests cover, in whole CHECKPOINTs; null if none.
 */
export function resumablePrefix(base: BaseRelease, path: string, ops: ReadonlyArray<readonly [string, ...unknown[]]>): Prefix | null {
  const points = base.points(path);
  const digests = base.digests(path);
  if (!points || !digests) return null;
  let blocks = 0;
  for (const op of ops) {
    if (op[0] !== "copy" || op[1] !== path || op[2] !== blocks) break;
    blocks += op[3] as number;
  }
  const checkpoints = Math.min(points.states.length, Math.floor((blocks * BLOCK_SIZE) / CHECKPOINT), Math.floor(digests.byteLength / 32 / (CHECKPOINT / BLOCK_SIZE)));
  return checkpoints > 0 ? { source: base.path(path), bytes: checkpoints * CHECKPOINT, points, digests } : null;
}

/** Copies whole blocks [first, first+n) of the base's `path` into `file`, with their recorded digests. */
export function copyBlocks(staging: Staging, base: BaseRelease, path: string, first: number, n: number, file: VerifiedFile, buf: Buffer): void {
  const size = base.file(path)!.size;
  const digests = base.digests(path);
  const fd = staging.own(openSync(base.path(path), "r"));
  try {
    const end = Math.min(size, (first + n) * BLOCK_SIZE);
    for (let pos = first * BLOCK_SIZE; pos < end; ) {
      const got = readSync(fd, buf, 0, Math.min(buf.byteLength, end - pos), pos);
      if (got <= 0) throw unavailable(`base file ${path} is shorter than its manifest says`);
      const chunk = buf.subarray(0, got);
      // Reads start on block boundaries and cover whole blocks (the last may be short).
      const b0 = pos / BLOCK_SIZE;
      const nb = Math.ceil(got / BLOCK_SIZE);
      if (digests && digests.byteLength >= (b0 + nb) * 32) file.write(chunk, digests.subarray(b0 * 32, (b0 + nb) * 32));
      else file.write(chunk);
      pos += got;
    }
  } finally {
    staging.close(fd);
  }
}

export async function stageDelta(paths: SlotPaths, spare: Spare, base: BaseRelease | null, baseId: string, body: ReadableStream<Uint8Array> | null, o: StageOptions): Promise<Staged> {
  const raw = uploadBody(body, o, "delta");
  if (!base) throw unavailable(`base release ${baseId.slice(0, 12)} is not kept here`);
  // Disk preflight first (disk-room.ts): a file rebuilt in the spare's copy needs no new room.
  const src = await roomForDelta(paths, raw, o, (path, ops) => (resumablePrefix(base, path, ops) ? spare.inPlaceBytes(path) : 0));
  return stage(paths, o, "delta", async (staging) => {
    const count = { n: 0 };
    // Decompressed, a delta is its header and literals: never more than a release and its header.
    const reader = new ByteReader(plainChunks(staging, src, o, count, MAX_RELEASE_BYTES + DELTA_HEADER_MAX + 1, "delta"));
    const { manifest: m, ops: allOps, signature } = await readHeader(reader, base);
    if (o.target) manifestTargetCheck(m, o.target);
    const blocks: Digests = {};
    const points: FilePoints = {};
    let resumed = 0;
    let kept = 0;
    const buf = Buffer.alloc(COPY_CHUNK);
    for (const f of m.files) {
      const ops = allOps[f.path]!;
      const prefix = resumablePrefix(base, f.path, ops);
      // With a prefix to keep, the spare's copy of this file is rewritten in place.
      const file = new VerifiedFile(staging, f, prefix ? spare.take(f.path, join(staging.dir, f.path)) : null);
      if (prefix) file.copyPrefix(prefix);
      // Blocks the prefix already holds: the leading copies skip them.
      let skip = prefix ? prefix.bytes / BLOCK_SIZE : 0;
      resumed += prefix?.bytes ?? 0;
      kept += file.kept;
      for (const op of ops) {
        if (op[0] === "data") {
          const missing = await reader.take(op[1], (c) => file.write(c));
          if (missing) throw bad(`truncated delta: it ends ${missing} bytes before the end of its literals for ${f.path}`);
          continue;
        }
        const first = op[2] + Math.min(skip, op[3]);
        const n = op[3] - Math.min(skip, op[3]);
        skip -= op[3] - n;
        if (n > 0) copyBlocks(staging, base, op[1], first, n, file, buf);
      }
      ({ digests: blocks[f.path]!, points: points[f.path]! } = file.finish());
    }
    if (!(await reader.atEnd())) throw bad("delta upload has bytes after its last op");
    staging.complete(m);
    const size = m.files.reduce((s, f) => s + f.size, 0);
    return { dir: staging.dir, manifest: m, blocks, points, signature, report: { mode: "delta", bytes_received: count.n, bytes_written: size - kept, bytes_in_place: kept, bytes_resumed: resumed } };
  });
}
