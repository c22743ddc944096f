/**
 * Resume points of kept releases, per release and file, in memory only (Bun
 * cannot save a hasher's state; see resumable-hash.ts): kept from each
 * install's verification, and made again after a restart by hashing the
 * release's files, which also checks them against their manifest.
 */
import { join } from "node:path";
import type { Manifest } from "../../protocol/manifest.ts";
import { ResumableHash, type ResumePoints } from "./resumable-hash.ts";

export type FilePoints = Record<string, ResumePoints>;

export class ResumeCache {
  private points = new Map<string, FilePoints>();

  get(id: string, path: string): ResumePoints | null {
    return this.points.get(id)?.[path] ?? null;
  }

  /** The points from a fresh verification of `id` (the copy just committed). */
  set(id: string, points: FilePoints): void {
    this.points.set(id, points);
  }

  delete(id: string): void {
    this.points.delete(id);
  }

  /**
   * Hashes the files of a kept release again for their resume points (a
   * restart loses them). A file that no longer matches its manifest is
   * returned, and gets none.
   */
  async warm(manifest: Manifest, dir: string): Promise<string[]> {
    if (this.points.has(manifest.id)) return [];
    const points: FilePoints = {};
    const damaged: string[] = [];
    for (const f of manifest.files) {
      const h = new ResumableHash();
      for await (const chunk of Bun.file(join(dir, f.path)).stream()) h.update(chunk);
      if (h.hex() === f.sha256 && h.bytes === f.size) points[f.path] = h.points();
      else damaged.push(f.path);
    }
    // An install while this ran has already kept points from a fresh verification.
    if (!this.points.has(manifest.id)) this.points.set(manifest.id, points);
    return damaged;
  }
}
