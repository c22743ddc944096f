/**
 * Planning a delta push: one pass over the release hashes each block, keeps
 * in memory only the blocks the worker's base release lacks (giving up as
 * soon as they pass half the release), and compresses gzip(header, literal
 * bytes) once per base for every host on it.
 */
import { BLOCK_SIZE, blockLen, type BlocksResponse, BlockSplitter, type DeltaHeader, type DeltaOp } from "../protocol/delta.ts";
import type { Manifest } from "../protocol/manifest.ts";
import { RELEASE_MANIFEST } from "../lib/paths.ts";
import { readTarball } from "../lib/tarball.ts";

export interface DeltaPlan {
  header: DeltaHeader;
  /** The literal blocks, in op order. */
  literals: Uint8Array[];
  /** Bytes that must travel (before gzip). */
  literalBytes: number;
  totalBytes: number;
}

const hexOf = (d: Uint8Array) => Buffer.from(d).toString("hex");

interface BaseBlock { path: string; index: number; len: number }

/** A base release's blocks: by digest (first occurrence), and by position. */
function index(base: BlocksResponse) {
  const byDigest = new Map<string, BaseBlock>();
  const files = new Map<string, { digests: Buffer; size: number }>();
  for (const [path, f] of Object.entries(base.files)) {
    const digests = Buffer.from(f.hashes, "base64");
    files.set(path, { digests, size: f.size });
    for (let i = 0; i < digests.byteLength / 32; i++) {
      const k = digests.toString("hex", i * 32, i * 32 + 32);
      if (!byDigest.has(k)) byDigest.set(k, { path, index: i, len: blockLen(f.size, i) });
    }
  }
  /** Block `index` of `path` in the base, if it has this digest. */
  const at = (path: string, index: number, digest: Uint8Array): BaseBlock | null => {
    const f = files.get(path);
    if (!f || index * 32 + 32 > f.digests.byteLength) return null;
    return f.digests.compare(digest, 0, 32, index * 32, index * 32 + 32) === 0 ? { path, index, len: blockLen(f.size, index) } : null;
  };
  return { byDigest, at };
}

/**
 * The release tarball ungzipped in one go with libdeflate: ~200 ms for a
 * 110 MB release here against ~310 ms for streaming zlib, and the plan's one
 * pass is most of a delta push's time on the master. The master holds the
 * release unpacked while it plans (the updater never does).
 */
async function* unpacked(file: string): AsyncGenerator<Uint8Array> {
  const plain = Bun.gunzipSync(await Bun.file(file).bytes(), { library: "libdeflate" });
  for (let off = 0; off < plain.byteLength; off += 1 << 20) yield plain.subarray(off, off + (1 << 20));
}

/**
 * Plans a delta of the release tarball `file` against `base`; null when the
 * literals would be more than half of the release (send it whole instead).
 */
export async function planDelta(file: string, manifest: Manifest, base: BlocksResponse): Promise<DeltaPlan | null> {
  if (base.block_size !== BLOCK_SIZE) return null;
  const have = index(base);
  const totalBytes = manifest.files.reduce((s, f) => s + f.size, 0);
  const ops: Record<string, DeltaOp[]> = {};
  const literals: Uint8Array[] = [];
  let literalBytes = 0;
  const TOO_MUCH = new Error("delta too large");
  try {
    await readTarball(unpacked(file), (e) => {
      // Only the manifest's files are rebuilt; manifest.json and a signed release's signature.json travel in the header.
      if (e.path === RELEASE_MANIFEST || !manifest.files.some((f) => f.path === e.path)) return e.skip();
      const list: DeltaOp[] = (ops[e.path] = []);
      const splitter = new BlockSplitter();
      let block = new Uint8Array(BLOCK_SIZE);
      let filled = 0;
      let n = 0; // this block's index in the new file
      const flush = () => {
        const bytes = block.subarray(0, filled);
        const h = new Bun.CryptoHasher("sha256");
        h.update(bytes);
        const digest = new Uint8Array(h.digest());
        const last = list.at(-1);
        // Continue the current run, else the same place in the same file, else
        // anywhere: repeated blocks (zero pages) would otherwise split one long
        // unchanged stretch into many ops, and the updater resumes its hash
        // over an unchanged prefix only when it is one run from block 0.
        const hit =
          (last?.[0] === "copy" ? have.at(last[1], last[2] + last[3], digest) : null) ??
          have.at(e.path, n, digest) ??
          have.byDigest.get(hexOf(digest));
        n += 1;
        if (hit && hit.len === filled) {
          if (last?.[0] === "copy" && last[1] === hit.path && last[2] + last[3] === hit.index) last[3] += 1;
          else list.push(["copy", hit.path, hit.index, 1]);
        } else {
          literals.push(bytes);
          literalBytes += filled;
          if (literalBytes * 2 > totalBytes) throw TOO_MUCH;
          if (last?.[0] === "data") last[1] += filled;
          else list.push(["data", filled]);
          block = new Uint8Array(BLOCK_SIZE); // the literal keeps the old buffer
        }
        filled = 0;
      };
      e.onData((c) =>
        splitter.split(c, (piece, ends) => {
          block.set(piece, filled);
          filled += piece.byteLength;
          if (ends) flush();
        }),
      );
      e.onEnd(() => {
        if (filled > 0) flush();
      });
    });
  } catch (err) {
    if (err === TOO_MUCH) return null;
    throw err;
  }
  return { header: { format: 1, base: base.release, block_size: BLOCK_SIZE, manifest, ops }, literals, literalBytes, totalBytes };
}

/**
 * The delta body, gzip(header line, literal blocks), compressed once: every
 * host on the same base gets the same bytes, so a fan-out does not pay the
 * compression per host. It is at most half the release (see planDelta).
 */
export async function deltaBody(plan: DeltaPlan): Promise<Uint8Array> {
  const parts = [Buffer.from(`${JSON.stringify(plan.header)}\n`), ...plan.literals];
  return Bun.gzipSync(Buffer.concat(parts), { level: 6 });
}

/**
 * Shared by every host of a push: one delta body per base index (null: send
 * it whole). Keyed by the digest of the index a worker sent, not by the base
 * id it names: one worker's poisoned index must not decide what its peers
 * on the same base receive.
 */
export class DeltaSource {
  private bodies = new Map<string, Promise<Uint8Array | null>>();
  /** `signature`: the release's signature.json, carried in every delta header. */
  constructor(private file: string, private manifest: Manifest, private signature?: string) {}

  body(base: BlocksResponse): Promise<Uint8Array | null> {
    const key = new Bun.CryptoHasher("sha256").update(JSON.stringify(base)).digest("hex");
    let b = this.bodies.get(key);
    if (!b) {
      b = planDelta(this.file, this.manifest, base).then((p) => (p ? deltaBody({ ...p, header: { ...p.header, ...(this.signature ? { signature: this.signature } : {}) } }) : null));
      this.bodies.set(key, b);
    }
    return b;
  }
}
