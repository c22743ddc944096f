/**
 * Staging from a delta upload: rebuild each file of the new release from the
 * base release's blocks and the literal bytes that follow the header, through
 * the same VerifiedFile as a full upload (size, sha256, mode, release id).
 * What cannot be rebuilt here (base gone, other block size) is
 * `delta_unavailable`, which tells the master to send the release in full.
 */
import { chmodSync, closeSync, mkdirSync, openSync, readSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BLOCK_SIZE, blockLen, DELTA_HEADER_MAX, DeltaHeader, type DeltaOp } from "../../protocol/delta.ts";
import { releaseId } from "../../protocol/manifest.ts";
import { DecnetError } from "../../lib/errors.ts";
import { RELEASE_MANIFEST, type SlotPaths } from "../../lib/paths.ts";
import { limited, MAX_RELEASE_BYTES, type StageOptions, type Staged } from "./stage.ts";
import { bad, type Prefix, VerifiedFile } from "./verified-file.ts";
import { CHECKPOINT, type ResumePoints } from "./resumable-hash.ts";
import type { Slots } from "./slots.ts";

const unavailable = (message: string) => new DecnetError("delta_unavailable", message);

/** Sequential reads over a byte stream: a header line, then exact byte counts. */
class ByteReader {
  private buf: Uint8Array = new Uint8Array(0);
  private done = false;
  constructor(private it: AsyncIterator<Uint8Array>) {}

  private async more(): Promise<boolean> {
    if (this.done) return false;
    const r = await this.it.next();
    if (r.done) {
      this.done = true;
      return false;
    }
    this.buf = this.buf.byteLength ? Buffer.concat([this.buf, r.value]) : r.value;
    return true;
  }

  async line(max: number): Promise<string> {
    for (;;) {
      const nl = this.buf.indexOf(0x0a);
      if (nl >= 0) {
        const text = Buffer.from(this.buf.subarray(0, nl)).toString("utf8");
        this.buf = this.buf.subarray(nl + 1);
        return text;
      }
      if (this.buf.byteLength > max) throw bad(`delta header is larger than ${max} bytes`);
      if (!(await this.more())) throw bad("delta upload ends inside its header");
    }
  }

  /** Hands exactly `n` bytes to `sink`, chunk by chunk. */
  async take(n: number, sink: (c: Uint8Array) => void): Promise<void> {
    while (n > 0) {
      if (this.buf.byteLength === 0 && !(await this.more())) throw bad(`delta upload ends ${n} bytes early`);
      const c = this.buf.subarray(0, Math.min(n, this.buf.byteLength));
      this.buf = this.buf.subarray(c.byteLength);
      n -= c.byteLength;
      sink(c);
    }
  }

  async atEnd(): Promise<boolean> {
    while (this.buf.byteLength === 0) if (!(await this.more())) return true;
    return false;
  }
}

const COPY_CHUNK = BLOCK_SIZE * 64;

/**
 * The longest start of `path` that is an unchanged copy of the same file in
 * the base (leading copy ops from block 0 on, in order) and that the base's
 * resume points and block digests cover, in whole CHECKPOINTs; null if none.
 */
function resumablePrefix(slots: Slots, base: string, path: string, ops: DeltaOp[], digests: Uint8Array | null): Omit<Prefix, "source"> | null {
  const points = slots.resumePoints(base, path);
  if (!points || !digests) return null;
  let blocks = 0;
  for (const op of ops) {
    if (op[0] !== "copy" || op[1] !== path || op[2] !== blocks) break;
    blocks += op[3];
  }
  const checkpoints = Math.min(points.states.length, Math.floor((blocks * BLOCK_SIZE) / CHECKPOINT), Math.floor(digests.byteLength / 32 / (CHECKPOINT / BLOCK_SIZE)));
  return checkpoints > 0 ? { bytes: checkpoints * CHECKPOINT, points, digests } : null;
}

export async function stageDelta(slots: Slots, paths: SlotPaths, base: string, body: ReadableStream<Uint8Array> | null, o: StageOptions): Promise<Staged> {
  if (!body) throw bad("empty body: send the delta");
  const baseManifest = slots.has(base) ? slots.manifest(base) : null;
  if (!baseManifest) throw unavailable(`base release ${base.slice(0, 12)} is not kept here`);
  mkdirSync(paths.releases, { recursive: true, mode: 0o755 });
  const dir = paths.staging(o.tag ?? `${Date.now()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(dir, { mode: 0o700 });
  const count = { n: 0 };
  try {
    const compressed = limited(body, o.maxBytes, count, o.signal);
    const plain = new ReadableStream<Uint8Array>({
      async pull(ctl) {
        const r = await compressed.next();
        if (r.done) ctl.close();
        else ctl.enqueue(r.value);
      },
    }).pipeThrough(new DecompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>);
    const reader = new ByteReader(plain[Symbol.asyncIterator]());
    let raw: unknown;
    try {
      raw = JSON.parse(await reader.line(DELTA_HEADER_MAX));
    } catch (e) {
      if (e instanceof DecnetError) throw e;
      throw bad("delta header is not JSON");
    }
    const parsed = DeltaHeader.safeParse(raw);
    if (!parsed.success) throw bad("invalid delta header", parsed.error.issues.slice(0, 5).map((i) => `${i.path.join(".")}: ${i.message}`));
    const h = parsed.data;
    if (h.base !== base) throw bad(`delta header names base ${h.base.slice(0, 12)}, the request ${base.slice(0, 12)}`);
    if (h.block_size !== BLOCK_SIZE) throw unavailable(`delta uses ${h.block_size}-byte blocks, this updater ${BLOCK_SIZE}`);
    const m = h.manifest;
    const id = releaseId(m.files);
    if (id !== m.id) throw bad(`release id mismatch: manifest says ${m.id}, its files give ${id}`);
    if (m.files.reduce((s, f) => s + f.size, 0) > MAX_RELEASE_BYTES) throw bad(`release declares more than ${MAX_RELEASE_BYTES} bytes`);
    for (const p of Object.keys(h.ops)) if (!m.files.some((f) => f.path === p)) throw bad(`refused: ops for ${p}, which is not listed in the manifest`);

    // Check every op against the sizes before writing a byte.
    for (const f of m.files) {
      const ops = h.ops[f.path];
      if (!ops) throw bad(`no ops for ${f.path}`);
      let total = 0;
      for (const op of ops) {
        // Every block but the file's last is whole: a short block may only end the file.
        if (total % BLOCK_SIZE !== 0) throw bad(`ops for ${f.path} continue after a short block`);
        if (op[0] === "data") total += op[1];
        else {
          const bf = baseManifest.files.find((x) => x.path === op[1]);
          if (!bf) throw unavailable(`base release has no ${op[1]}`);
          const blocks = Math.ceil(bf.size / BLOCK_SIZE);
          if (op[2] + op[3] > blocks) throw bad(`copy of blocks ${op[2]}..${op[2] + op[3]} past the end of ${op[1]} (${blocks} blocks)`);
          for (let i = op[2]; i < op[2] + op[3]; i++) total += blockLen(bf.size, i);
        }
        if (total > f.size) break;
      }
      if (total !== f.size) throw bad(`ops for ${f.path} make ${total} bytes, the manifest says ${f.size}`);
    }

    const blocks: Record<string, Uint8Array> = {};
    const points: Record<string, ResumePoints> = {};
    let resumedBytes = 0;
    let keptBytes = 0;
    const copyBuf = Buffer.alloc(COPY_CHUNK);
    // The base's recorded index: copied blocks keep their digests.
    const baseIndex = await slots.blocks(base);
    const digestsOf = new Map<string, Uint8Array | null>();
    const baseDigests = (path: string) => {
      if (!digestsOf.has(path)) {
        const f = baseIndex?.files[path];
        digestsOf.set(path, f ? Buffer.from(f.hashes, "base64") : null);
      }
      return digestsOf.get(path)!;
    };
    for (const f of m.files) {
      const ops = h.ops[f.path]!;
      const prefix = resumablePrefix(slots, base, f.path, ops, baseDigests(f.path));
      // The spare's copy of this file, when there is one, is rewritten in place.
      const held = prefix ? slots.takeSpare(f.path, join(dir, f.path)) : null;
      const file = new VerifiedFile(dir, f, prefix ? { ...prefix, source: join(paths.release(base), f.path) } : undefined, held ?? undefined);
      // Blocks the prefix already holds: the leading copies skip them.
      let skip = prefix ? prefix.bytes / BLOCK_SIZE : 0;
      resumedBytes += prefix?.bytes ?? 0;
      keptBytes += file.kept;
      for (const op of ops) {
        if (op[0] === "data") {
          await reader.take(op[1], (c) => file.write(c));
          continue;
        }
        const [, path] = op;
        const first = op[2] + Math.min(skip, op[3]);
        const n = op[3] - Math.min(skip, op[3]);
        skip -= op[3] - n;
        if (n === 0) continue;
        const size = baseManifest.files.find((x) => x.path === path)!.size;
        const digests = baseDigests(path);
        const fd = openSync(join(paths.release(base), path), "r");
        try {
          const end = Math.min(size, (first + n) * BLOCK_SIZE);
          for (let pos = first * BLOCK_SIZE; pos < end; ) {
            const got = readSync(fd, copyBuf, 0, Math.min(copyBuf.byteLength, end - pos), pos);
            if (got <= 0) throw unavailable(`base file ${path} is shorter than its manifest says`);
            const chunk = copyBuf.subarray(0, got);
            // Reads start on block boundaries and cover whole blocks (the last may be short).
            const b0 = pos / BLOCK_SIZE;
            const nb = Math.ceil(got / BLOCK_SIZE);
            if (digests && digests.byteLength >= (b0 + nb) * 32) file.write(chunk, digests.subarray(b0 * 32, (b0 + nb) * 32));
            else file.write(chunk);
            pos += got;
          }
        } finally {
          closeSync(fd);
        }
      }
      ({ digests: blocks[f.path]!, points: points[f.path]! } = file.finish());
    }
    if (!(await reader.atEnd())) throw bad("delta upload has bytes after its last op");
    for (const f of m.files) chmodSync(join(dir, f.path), Number.parseInt(f.mode, 8));
    writeFileSync(join(dir, RELEASE_MANIFEST), `${JSON.stringify(m, null, 2)}\n`, { mode: 0o644 });
    return { dir, manifest: m, bytesReceived: count.n, blocks, points, resumedBytes, keptBytes };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    if (e instanceof DecnetError) throw e;
    throw bad(`corrupt or truncated delta: ${(e as Error).message}`);
  }
}
