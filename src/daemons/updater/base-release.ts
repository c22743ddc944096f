/**
 * The release a delta is rebuilt against, asked once: its manifest, its
 * block digests (as recorded when it was verified) and its resume points,
 * handed to the delta stager as one value.
 */
import { join } from "node:path";
import type { BlocksResponse } from "../../protocol/delta.ts";
import type { Manifest, ManifestFile } from "../../protocol/manifest.ts";
import { digestsOf } from "./block-index.ts";
import type { ResumePoints } from "./resumable-hash.ts";

export class BaseRelease {
  private digestCache = new Map<string, Uint8Array | null>();

  constructor(
    readonly manifest: Manifest,
    readonly dir: string,
    private index: BlocksResponse,
    private resume: (path: string) => ResumePoints | null,
  ) {}

  get id(): string {
    return this.manifest.id;
  }

  file(path: string): ManifestFile | undefined {
    return this.manifest.files.find((f) => f.path === path);
  }

  /** Where the base's file `path` is on disk. */
  path(path: string): string {
    return join(this.dir, path);
  }

  /** The recorded block digests of `path` (32 bytes a block), or null. */
  digests(path: string): Uint8Array | null {
    if (!this.digestCache.has(path)) this.digestCache.set(path, digestsOf(this.index, path));
    return this.digestCache.get(path)!;
  }

  /** Where hashing `path` can resume (kept in memory since its verification), or null. */
  points(path: string): ResumePoints | null {
    return this.resume(path);
  }
}
