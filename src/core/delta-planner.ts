/**
 * One push's delta bodies, per base release and format: the new release's
 * inputs read once from its files, the base's index from the release cache
 * (asked of the worker only when missing, compactly when it can), format 2
 * against the cached base files when the updater accepts it, else format 1.
 */
import { BLOCK_SIZE, type BlocksResponse } from "../protocol/delta.ts";
import { type BlockIndex, decodeCompactIndex, encodeIndexQuery, groupDigests, IndexFormatError } from "../protocol/block-index.ts";
import type { Manifest } from "../protocol/manifest.ts";
import { encodeDelta1, encodeDelta2, type NewFile } from "./delta2-encode.ts";
import { type HashedFile, hashFile, planInputs } from "./plan-input.ts";
import { ReleaseCache } from "./release-cache.ts";

/** How the worker can be asked for its index of a base. */
export interface IndexFetch {
  /** POST /blocks with an encodeIndexQuery body → encodeCompactIndex answer and the bytes it took on the wire (format-2 updaters). */
  compact?: (query: Uint8Array) => Promise<{ index: Uint8Array; wire: number }>;
  /** GET /blocks as today (every updater). */
  json: () => Promise<BlocksResponse>;
}

export interface PlannedBody {
  format: 1 | 2;
  body: Uint8Array;
  /** Frames with a dictionary (format 2): 0 when the master has no copy of the base. */
  framesWithDict: number;
}

/** A host's delta (null: send it whole) and the index bytes its worker sent for it (0 when the index came from the cache). */
export interface HostDelta {
  planned: PlannedBody | null;
  received: number;
}

export class DeltaPlanner {
  private files: NewFile[];
  private dispose: () => void;
  private hashed: Record<string, HashedFile>;
  private bodies = new Map<string, Promise<PlannedBody | null>>();

  /**
   * `local[path]` are the release's files on this machine (e.g. the
   * executable); `hashed` what the caller already hashed making the manifest;
   * `signature` the release's signature.json, carried in every header.
   */
  constructor(private manifest: Manifest, private local: Record<string, string>, hashed: Record<string, HashedFile> = {}, private cache = new ReleaseCache(), private signature: string | null = null) {
    this.hashed = Object.fromEntries(manifest.files.map((f) => [f.path, hashed[f.path] ?? hashFile(local[f.path]!)]));
    ({ files: this.files, dispose: this.dispose } = planInputs(manifest, local, this.hashed));
  }

  /** Keeps this release's index and files in the cache: the base of the next push (once a host runs it). */
  remember(): void {
    const files = Object.fromEntries(Object.entries(this.hashed).map(([p, h]) => [p, { size: h.size, digests: h.digests }]));
    this.cache.putIndex({ release: this.manifest.id, width: 32, files });
    this.cache.putContent(this.manifest, this.local);
  }

  /**
   * The body for a worker on `base` that accepts `formats` (an updater that
   * does not say accepts [1]); planned null when a delta would be about as
   * large as the release (send it whole). With the base's index in the
   * master's cache, one plan per base and format for every host. Otherwise
   * this host's worker is asked, and its answer is never cached: a rooted
   * worker could otherwise decide what its peers receive. Hosts share a plan
   * then only when their answers are byte for byte the same.
   */
  async body(base: string, formats: readonly number[], fetch: IndexFetch): Promise<HostDelta> {
    const format = formats.includes(2) ? 2 : 1;
    const cached = this.cache.index(base);
    if (cached) return { planned: await this.shared(`${base}/${format}/cache`, () => this.encode(cached, format)), received: 0 };
    const got = await this.fetchIndex(base, format, fetch);
    if (!got.index) return { planned: null, received: got.bytes };
    const index = got.index;
    return { planned: await this.shared(`${base}/${format}/${got.digest}`, () => this.encode(index, format)), received: got.bytes };
  }

  private shared(key: string, make: () => PlannedBody | null): Promise<PlannedBody | null> {
    let p = this.bodies.get(key);
    if (!p) {
      p = Promise.resolve().then(make);
      this.bodies.set(key, p);
      p.catch(() => this.bodies.delete(key));
    }
    return p;
  }

  private encode(index: BlockIndex, format: 1 | 2): PlannedBody | null {
    const signature = this.signature ?? undefined;
    if (format === 1) {
      const r = encodeDelta1({ manifest: this.manifest, files: this.files, base: index, signature });
      return r && { format: 1, body: r.body, framesWithDict: 0 };
    }
    const content = this.cache.content(index.release);
    try {
      const r = encodeDelta2({ manifest: this.manifest, files: this.files, base: index, baseBytes: content, signature });
      return r && { format: 2, body: r.body, framesWithDict: r.stats.framesWithDict };
    } finally {
      content?.dispose();
    }
  }

  /**
   * The worker's index of `base` and the bytes it sent; index null when it
   * is not one this master can plan against (other block size).
   */
  private async fetchIndex(base: string, format: 1 | 2, fetch: IndexFetch): Promise<{ index: BlockIndex | null; bytes: number; digest: string }> {
    const digestOf = (b: Uint8Array | string) => new Bun.CryptoHasher("sha256").update(b).digest("hex");
    if (format === 2 && fetch.compact) {
      const known = Object.fromEntries(Object.entries(this.hashed).map(([p, h]) => [p, h.digests]));
      const answer = await fetch.compact(encodeIndexQuery(Object.fromEntries(Object.entries(known).map(([p, d]) => [p, groupDigests(d)]))));
      return { index: decodeCompactIndex(answer.index, known, base), bytes: answer.wire, digest: digestOf(answer.index) };
    }
    const r = await fetch.json();
    const text = JSON.stringify(r);
    if (r.release !== base) throw new IndexFormatError(`asked for the index of ${base.slice(0, 12)}, the worker sent ${r.release.slice(0, 12)}'s`);
    const files = Object.fromEntries(Object.entries(r.files).map(([p, f]) => [p, { size: f.size, digests: new Uint8Array(Buffer.from(f.hashes, "base64")) }]));
    const whole = Object.values(files).every((f) => f.digests.byteLength === Math.ceil(f.size / BLOCK_SIZE) * 32);
    return { index: r.block_size === BLOCK_SIZE && whole ? { release: base, width: 32, files } : null, bytes: text.length, digest: digestOf(text) };
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
