/**
 * The master's cache of the releases it packs, builds or pushes, keyed by
 * release id: each one's block index (56 kB for a 110 MB release, the last
 * 64 kept), so a push asks a worker for its index only for a base it never
 * saw; and each one's files (the last 3), the dictionaries of format 2.
 */
import { closeSync, copyFileSync, existsSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { type BlockIndex, decodeCompactIndex, encodeCompactIndex, IndexFormatError, INDEX_WIDTH } from "../protocol/block-index.ts";
import type { Manifest } from "../protocol/manifest.ts";
import { writeFileAtomic } from "../lib/atomic.ts";
import { ensurePrivateDir, homePaths } from "../lib/paths.ts";
import type { BaseBytes } from "./delta2-encode.ts";

export interface CacheLimits {
  /** Block indexes kept (least recently used dropped first). */
  indexes: number;
  /** Releases whose files are kept (~110 MB each). */
  contents: number;
}

export const DEFAULT_LIMITS: CacheLimits = { indexes: 64, contents: 3 };
const ID = /^[0-9a-f]{64}$/;

export class ReleaseCache {
  private indexDir: string;
  private contentDir: string;

  constructor(readonly dir: string = homePaths().releaseCache, private limits: CacheLimits = DEFAULT_LIMITS) {
    ensurePrivateDir(dir);
    this.indexDir = ensurePrivateDir(join(dir, "index"));
    this.contentDir = ensurePrivateDir(join(dir, "content"));
  }

  private indexPath = (id: string) => join(this.indexDir, `${id}.idx`);
  private contentPath = (id: string) => join(this.contentDir, id);

  /** The index of release `id`, or null; a damaged entry is dropped. */
  index(id: string): BlockIndex | null {
    if (!ID.test(id)) return null;
    const p = this.indexPath(id);
    if (!existsSync(p)) return null;
    try {
      const index = decodeCompactIndex(readFileSync(p), null, id);
      touch(p);
      return index;
    } catch (e) {
      if (!(e instanceof IndexFormatError)) throw e;
      rmSync(p, { force: true });
      return null;
    }
  }

  /** Keeps `index` (at INDEX_WIDTH bytes a digest) and prunes. */
  putIndex(index: BlockIndex): void {
    if (!ID.test(index.release)) throw new Error(`not a release id: ${index.release}`);
    writeFileAtomic(this.indexPath(index.release), encodeCompactIndex(index, null, Math.min(INDEX_WIDTH, index.width)), 0o600);
    this.prune();
  }

  /** Release `id`'s files, as dictionaries for a delta against it; null when they are not kept. */
  content(id: string): (BaseBytes & { dispose(): void }) | null {
    if (!ID.test(id)) return null;
    const dir = this.contentPath(id);
    let manifest: Manifest;
    try {
      manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as Manifest;
    } catch {
      return null;
    }
    touch(dir);
    const sizes = new Map(manifest.files.map((f) => [f.path, f.size]));
    const fds = new Map<string, number>();
    return {
      read(path, offset, length) {
        const size = sizes.get(path);
        if (size === undefined || offset + length > size) return null;
        let fd = fds.get(path);
        if (fd === undefined) {
          try {
            fd = openSync(join(dir, path), "r");
          } catch {
            return null;
          }
          fds.set(path, fd);
        }
        const out = Buffer.allocUnsafe(length);
        for (let got = 0; got < length; ) {
          const n = readSync(fd, out, got, length - got, offset + got);
          if (n <= 0) return null; // cut short on disk: no dictionary rather than a wrong one
          got += n;
        }
        return out;
      },
      dispose() {
        for (const fd of fds.values()) closeSync(fd);
        fds.clear();
      },
    };
  }

  hasContent = (id: string) => ID.test(id) && existsSync(join(this.contentPath(id), "manifest.json"));

  /**
   * Keeps a copy of the release's files (`local[path]`, checked only for
   * size: the caller hashed them) and prunes. The manifest is written last,
   * so a half-made entry is never read.
   */
  putContent(manifest: Manifest, local: Record<string, string>): void {
    if (this.hasContent(manifest.id)) return void touch(this.contentPath(manifest.id));
    const tmp = join(this.contentDir, `.tmp-${process.pid}-${Date.now()}`);
    mkdirSync(tmp, { mode: 0o700 });
    try {
      for (const f of manifest.files) {
        const src = local[f.path];
        if (!src || statSync(src).size !== f.size) throw new Error(`no ${f.path} of ${f.size} bytes to cache`);
        // A hard link when it can (the push dir's copy is never written again): no 110 MB copy on the push's path.
        try {
          linkSync(src, join(tmp, f.path));
        } catch {
          copyFileSync(src, join(tmp, f.path));
        }
      }
      writeFileAtomic(join(tmp, "manifest.json"), JSON.stringify(manifest), 0o600);
      rmSync(this.contentPath(manifest.id), { recursive: true, force: true });
      renameSync(tmp, this.contentPath(manifest.id));
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    this.prune();
  }

  /** Drops the least recently used beyond the limits, and leftovers of interrupted writes. */
  prune(): void {
    const byAge = (dir: string, names: string[]) =>
      names.map((n) => ({ n, t: statSync(join(dir, n)).mtimeMs })).sort((a, b) => b.t - a.t).map((x) => x.n);
    const idx = readdirSync(this.indexDir).filter((n) => /^[0-9a-f]{64}\.idx$/.test(n));
    for (const n of byAge(this.indexDir, idx).slice(this.limits.indexes)) rmSync(join(this.indexDir, n), { force: true });
    const all = readdirSync(this.contentDir);
    const ids = all.filter((n) => ID.test(n));
    for (const n of byAge(this.contentDir, ids).slice(this.limits.contents)) rmSync(join(this.contentDir, n), { recursive: true, force: true });
    const hour = Date.now() - 3600_000;
    for (const n of all.filter((n) => n.startsWith(".tmp-"))) if (statSync(join(this.contentDir, n)).mtimeMs < hour) rmSync(join(this.contentDir, n), { recursive: true, force: true });
  }
}

/** Marks an entry used now (LRU order for prune). */
function touch(p: string): void {
  const now = new Date();
  try {
    utimesSync(p, now, now);
  } catch {
    // gone meanwhile: nothing to keep fresh
  }
}
