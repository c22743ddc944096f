/**
 * Planning a delta push: unpack the release once, hash its blocks, match them
 * against the blocks of a release the worker keeps, and stream
 * gzip(header, literal bytes) — only what the worker lacks.
 */
import { closeSync, mkdirSync, openSync, readSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { BLOCK_SIZE, BlockHasher, type BlocksResponse, type DeltaHeader, type DeltaOp } from "../protocol/delta.ts";
import type { Manifest } from "../protocol/manifest.ts";
import { RELEASE_MANIFEST } from "../lib/paths.ts";
import { readTarball } from "../lib/tarball.ts";

export interface Unpacked {
  dir: string;
  manifest: Manifest;
  /** Per file, the block digests (32 bytes each). */
  blocks: Record<string, Uint8Array>;
}

/** Unpacks a (trusted, locally made) release tarball and hashes its blocks. */
export async function unpack(file: string, manifest: Manifest, dir: string): Promise<Unpacked> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const blocks: Record<string, Uint8Array> = {};
  await readTarball(Bun.file(file).stream(), (e) => {
    if (e.path === RELEASE_MANIFEST) return e.skip();
    const fd = openSync(join(dir, e.path), "wx", 0o600);
    const h = new BlockHasher();
    e.onData((c) => {
      h.update(c);
      for (let off = 0; off < c.byteLength; ) off += writeSync(fd, c, off);
    });
    e.onEnd(() => {
      closeSync(fd);
      blocks[e.path] = h.finish();
    });
  });
  return { dir, manifest, blocks };
}

export interface DeltaPlan {
  header: DeltaHeader;
  /** Bytes that must travel (before gzip). */
  literalBytes: number;
  totalBytes: number;
}

const hex = (b: Uint8Array, i: number) => Buffer.from(b.subarray(i * 32, i * 32 + 32)).toString("hex");
const blockLen = (size: number, i: number) => Math.min(BLOCK_SIZE, size - i * BLOCK_SIZE);

export function planDelta(u: Unpacked, base: BlocksResponse): DeltaPlan {
  // Which (file, block, length) of the base has each digest.
  const have = new Map<string, { path: string; index: number; len: number }>();
  for (const [path, f] of Object.entries(base.files)) {
    const digests = Buffer.from(f.hashes, "base64");
    for (let i = 0; i < digests.byteLength / 32; i++) {
      const k = hex(digests, i);
      if (!have.has(k)) have.set(k, { path, index: i, len: blockLen(f.size, i) });
    }
  }
  const ops: Record<string, DeltaOp[]> = {};
  let literalBytes = 0;
  let totalBytes = 0;
  for (const f of u.manifest.files) {
    const list: DeltaOp[] = [];
    const digests = u.blocks[f.path]!;
    const n = Math.ceil(f.size / BLOCK_SIZE);
    for (let i = 0; i < n; i++) {
      const len = blockLen(f.size, i);
      const hit = base.block_size === BLOCK_SIZE ? have.get(hex(digests, i)) : undefined;
      const last = list.at(-1);
      if (hit && hit.len === len) {
        if (last?.[0] === "copy" && last[1] === hit.path && last[2] + last[3] === hit.index) last[3] += 1;
        else list.push(["copy", hit.path, hit.index, 1]);
      } else {
        literalBytes += len;
        if (last?.[0] === "data") last[1] += len;
        else list.push(["data", len]);
      }
      totalBytes += len;
    }
    ops[f.path] = list;
  }
  return { header: { format: 1, base: base.release, block_size: BLOCK_SIZE, manifest: u.manifest, ops }, literalBytes, totalBytes };
}

/** The delta body: gzip of the header line and the literal ranges, read from the unpacked files. */
export function deltaBody(u: Unpacked, plan: DeltaPlan): ReadableStream<Uint8Array> {
  async function* parts(): AsyncGenerator<Uint8Array> {
    yield Buffer.from(`${JSON.stringify(plan.header)}\n`);
    const buf = Buffer.alloc(1024 * 1024);
    for (const f of u.manifest.files) {
      let pos = 0;
      const fd = openSync(join(u.dir, f.path), "r");
      try {
        for (const op of plan.header.ops[f.path]!) {
          if (op[0] === "copy") {
            // Copied blocks are whole blocks of the new file too (lengths matched).
            pos = Math.min(f.size, pos + op[3] * BLOCK_SIZE);
            continue;
          }
          let left = op[1];
          while (left > 0) {
            const got = readSync(fd, buf, 0, Math.min(buf.byteLength, left), pos);
            if (got <= 0) throw new Error(`${f.path} is shorter than its manifest says`);
            yield Buffer.from(buf.subarray(0, got));
            pos += got;
            left -= got;
          }
        }
      } finally {
        closeSync(fd);
      }
    }
  }
  const it = parts();
  return new ReadableStream<Uint8Array>({
    async pull(ctl) {
      const r = await it.next();
      if (r.done) ctl.close();
      else ctl.enqueue(r.value);
    },
  }).pipeThrough(new CompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>);
}
