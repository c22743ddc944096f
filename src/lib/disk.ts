/**
 * Free space on a file system, as an unprivileged writer sees it (statfs
 * `bavail`, not `bfree`: root's reserved blocks are not the updater's to count on).
 */
import { statfsSync } from "node:fs";
import { dirname } from "node:path";

export interface Space {
  free_bytes: number;
  size_bytes: number;
  /** The file system's block size: files take whole blocks. */
  block_bytes: number;
}

/** Space on the file system holding `path`, or its nearest existing parent (a first install has no releases/ yet). */
export function spaceAt(path: string): Space {
  for (let p = path; ; p = dirname(p)) {
    try {
      const s = statfsSync(p);
      return { free_bytes: s.bavail * s.bsize, size_bytes: s.blocks * s.bsize, block_bytes: s.bsize };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT" || p === dirname(p)) throw e;
    }
  }
}
