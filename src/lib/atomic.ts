/**
 * Crash-safe file changes: write to a temp file, fsync, rename over the
 * target; and replace a symlink by creating a new one and renaming it.
 */
import { closeSync, fsyncSync, openSync, renameSync, symlinkSync, unlinkSync, writeSync } from "node:fs";
import { dirname } from "node:path";

/** fsync(2) a file or a directory by path. */
export function fsyncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Replaces `path` whole: readers see the old or the new content, never a mix.
 * `durable: false` skips both fsyncs, for files that may be lost at a power
 * cut (pid files, indexes that are recomputed): under a busy disk each fsync
 * waits behind everyone's writeback.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644, o: { durable?: boolean } = {}): void {
  const durable = o.durable ?? true;
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const fd = openSync(tmp, "w", mode);
  try {
    writeSync(fd, typeof data === "string" ? Buffer.from(data) : data);
    if (durable) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, path);
  } catch (e) {
    try { unlinkSync(tmp); } catch {}
    throw e;
  }
  if (durable) fsyncPath(dirname(path));
}

/**
 * Points `link` at `target` with no instant where `link` is missing:
 * a new symlink beside it, then rename(2) over it.
 */
export function replaceSymlink(link: string, target: string): void {
  const tmp = `${link}.new-${process.pid}`;
  try { unlinkSync(tmp); } catch {}
  symlinkSync(target, tmp);
  renameSync(tmp, link);
  fsyncPath(dirname(link));
}
