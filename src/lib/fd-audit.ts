/**
 * A process's open files that were deleted under a directory. Each keeps its
 * blocks allocated until it is closed (df counts them, du cannot find them):
 * the updater counts its own after every operation, tests count any daemon's.
 */
import { readdirSync, readlinkSync, statSync } from "node:fs";

export interface DeletedFd {
  fd: number;
  /** The path it had, as /proc shows it (without " (deleted)"). */
  path: string;
  /** What it still holds on disk. */
  bytes: number;
}

const SUFFIX = " (deleted)";

export function deletedFds(dir: string, pid: number | "self" = "self"): DeletedFd[] {
  const base = `/proc/${pid}/fd`;
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  const out: DeletedFd[] = [];
  let fds: string[];
  try {
    fds = readdirSync(base);
  } catch {
    return out; // the process is gone
  }
  for (const fd of fds) {
    try {
      const link = readlinkSync(`${base}/${fd}`);
      if (!link.endsWith(SUFFIX) || !link.startsWith(prefix)) continue;
      // stat through /proc follows the fd to the file itself, deleted or not.
      out.push({ fd: Number(fd), path: link.slice(0, -SUFFIX.length), bytes: statSync(`${base}/${fd}`).blocks * 512 });
    } catch {} // closed meanwhile
  }
  return out;
}
