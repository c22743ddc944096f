/**
 * Block indexes of a release set: the sha256 of each BLOCK_SIZE block of each
 * file, recorded when a release is verified (blocks/<id>.json, beside
 * releases/, never inside an immutable release) and served by GET /blocks so
 * the master can plan a delta. A lost or stale index is computed again.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { BLOCK_SIZE, BlockHasher, BlocksResponse } from "../../protocol/delta.ts";
import type { Manifest } from "../../protocol/manifest.ts";
import { writeFileAtomic } from "../../lib/atomic.ts";
import type { SlotPaths } from "../../lib/paths.ts";

/** Per file, its block digests concatenated (32 bytes each). */
export type Digests = Record<string, Uint8Array>;

export class BlockIndex {
  constructor(private paths: SlotPaths) {}

  /** Records the digests computed while `manifest`'s release was verified. */
  save(manifest: Manifest, digests: Digests): void {
    const files: BlocksResponse["files"] = {};
    for (const f of manifest.files) {
      const b = digests[f.path];
      if (b) files[f.path] = { size: f.size, hashes: Buffer.from(b).toString("base64") };
    }
    mkdirSync(this.paths.blocksDir, { recursive: true, mode: 0o700 });
    // Not forced to disk: get() recomputes an index that a power cut lost.
    writeFileAtomic(this.paths.blocks(manifest.id), JSON.stringify({ release: manifest.id, block_size: BLOCK_SIZE, files }), 0o600, { durable: false });
  }

  /** The recorded index of `manifest`'s release, or null when there is none usable. */
  recorded(id: string): BlocksResponse | null {
    return readIndex(this.paths.blocks(id));
  }

  /** The index of a kept release: recorded, or computed from its files (and recorded). */
  async get(manifest: Manifest, dir: string): Promise<BlocksResponse> {
    const have = this.recorded(manifest.id);
    if (have) return have;
    const computed: Digests = {};
    for (const f of manifest.files) {
      const h = new BlockHasher();
      for await (const chunk of Bun.file(join(dir, f.path)).stream()) h.update(chunk);
      computed[f.path] = h.finish();
    }
    this.save(manifest, computed);
    return this.recorded(manifest.id)!;
  }

  has(id: string): boolean {
    return existsSync(this.paths.blocks(id));
  }

  /** Moves `id`'s index to `dest` (into the spare). */
  moveTo(id: string, dest: string): void {
    renameSync(this.paths.blocks(id), dest);
  }

  remove(id: string): void {
    rmSync(this.paths.blocks(id), { force: true });
  }

  /** Removes indexes of releases that are gone (what a crash inside a prune leaves). */
  keepOnly(present: Set<string>): void {
    const files = existsSync(this.paths.blocksDir) ? readdirSync(this.paths.blocksDir) : [];
    for (const f of files) if (f.endsWith(".json") && !present.has(f.slice(0, -5))) rmSync(join(this.paths.blocksDir, f), { force: true });
  }
}

/** A block index file, if it parses and uses this updater's block size. */
export function readIndex(file: string): BlocksResponse | null {
  try {
    const r = BlocksResponse.parse(JSON.parse(readFileSync(file, "utf8")));
    return r.block_size === BLOCK_SIZE ? r : null;
  } catch {
    return null;
  }
}

export const digestsOf = (index: BlocksResponse | null, path: string): Uint8Array | null => {
  const f = index?.files[path];
  return f ? new Uint8Array(Buffer.from(f.hashes, "base64")) : null;
};
