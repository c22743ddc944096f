/**
 * One push's delta bodies, per base release and format: the new release's
 * inputs read once from its files, the base's index from the release cache
 * (asked of the worker only when missing, compactly when it can), format 2
 * against the cached base files when the updater accepts it, else format 1.
 */
import { BLOCK_SIZE, type BlocksResponse } from "../protocol/delta.ts";
import { type BlockIndex, decodeCompactIndex, encodeIndexQuery, groupDigests } from "../protocol/block-index.ts";
import type { Manifest } from "../protocol/manifest.ts";
import { encodeDelta1, encodeDelta2, type NewFile } from "./delta2-encode.ts";
import { type HashedFile, hashFile, planInputs } from "./plan-input.ts";
import { ReleaseCache } from "./release-cache.ts";

/** How the worker can be asked for its index of a base. */
export interface IndexFetch {
  /** POST /blocks with an encodeIndexQuery body → encodeCompactIndex answer (format-2 updaters). */
  compact?: (query: Uint8Array) => Promise<Uint8Array>;
  /** GET /blocks as today (every updater). */
  json: () => Promise<BlocksResponse>;
}

export interface PlannedBody {
  format: 1 | 2;
  body: Uint8Array;
  /** Bytes of index received from the worker for it (0 when it came from the cache). */
  indexBytes: number;
  /** Frames with a dictionary (format 2): 0 when the master has no copy of the base. */
  framesWithDict: number;
}

export class DeltaPlanner {
  private files: NewFile[];
  private dispose: () => void;
  private hashed: Record<string, HashedFile>;
  private bodies = new Map<string, Promise<PlannedBody | null>>();

  /**
   * `local[path]` are the release's files on this machine (e.g. the
   * executable); `hashed` what the caller already hashed making the manifest.
   */
  constructor(private manifest: Manifest, private local: Record<string, string>, hashed: Record<string, HashedFile> = {}, private cache = new ReleaseCache()) {
    this.hashed = Object.fromEntries(manifest.files.map((f) => [f.path, hashed[f.path] ?? hashFile(local[f.path]!)]));
    ({ files: this.files, dispose: this.dispose } = planInputs(manifest, local, this.hashed));
  }

  /** Keeps this release's index and files in the cache: the base of the next push. */
  remember(): void {
    const files = Object.fromEntries(Object.entries(this.hashed).map(([p, h]) => [p, { size: h.size, digests: h.digests }]));
    this.cache.putIndex({ release: this.manifest.id, width: 32, files });
    this.cache.putContent(this.manifest, this.local);
  }

  /**
   * The body for a worker on `base` that accepts `formats` (an updater that
   * does not say accepts [1]); null when a delta would be about as large as
   * the release (send it whole). One plan per base and format, shared by
   * every host of the push.
   */
  body(base: string, formats: readonly number[], fetch: IndexFetch): Promise<PlannedBody | null> {
    const format = formats.includes(2) ? 2 : 1;
    const key = `${base}/${format}`;
    let p = this.bodies.get(key);
    if (!p) {
      p = this.plan(base, format, fetch);
      this.bodies.set(key, p);
      p.catch(() => this.bodies.delete(key)); // a failed fetch is retried by the next host
    }
    return p;
  }

  private async plan(base: string, format: 1 | 2, fetch: IndexFetch): Promise<PlannedBody | null> {
    let indexBytes = 0;
    let index = this.cache.index(base);
    if (!index) {
      const got = await this.fetchIndex(base, format, fetch);
      if (!got) return null;
      ({ index, bytes: indexBytes } = got);
      this.cache.putIndex(index);
    }
    if (format === 1) {
      const r = encodeDelta1({ manifest: this.manifest, files: this.files, base: index });
      return r && { format: 1, body: r.body, indexBytes, framesWithDict: 0 };
    }
    const content = this.cache.content(base);
    try {
      const r = encodeDelta2({ manifest: this.manifest, files: this.files, base: index, baseBytes: content });
      return r && { format: 2, body: r.body, indexBytes, framesWithDict: r.stats.framesWithDict };
    } finally {
      content?.dispose();
    }
  }

  /** The worker's index of `base`; null when it is not one this master can plan against (other block size). */
  private async fetchIndex(base: string, format: 1 | 2, fetch: IndexFetch): Promise<{ index: BlockIndex; bytes: number } | null> {
    if (format === 2 && fetch.compact) {
      const known = Object.fromEntries(Object.entries(this.hashed).map(([p, h]) => [p, h.digests]));
      const answer = await fetch.compact(encodeIndexQuery(Object.fromEntries(Object.entries(known).map(([p, d]) => [p, groupDigests(d)]))));
      return { index: decodeCompactIndex(answer, known, base), bytes: answer.byteLength };
    }
    const r = await fetch.json();
    if (r.release !== base) throw new Error(`asked for the index of ${base.slice(0, 12)}, the worker sent ${r.release.slice(0, 12)}'s`);
    const files = Object.fromEntries(Object.entries(r.files).map(([p, f]) => [p, { size: f.size, digests: new Uint8Array(Buffer.from(f.hashes, "base64")) }]));
    const whole = Object.values(files).every((f) => f.digests.byteLength === Math.ceil(f.size / BLOCK_SIZE) * 32);
    return r.block_size === BLOCK_SIZE && whole ? { index: { release: base, width: 32, files }, bytes: JSON.stringify(r).length } : null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
