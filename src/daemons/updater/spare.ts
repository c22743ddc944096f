/**
 * The spare: the last release pruning removed, kept (with its block index)
 * at releases/.spare so that the next delta install rewrites its executable
 * in place instead of writing a whole new one. Every rule about it lives
 * here: what becomes the spare, when it may be taken, that it is never
 * written through a link or another name, and which of its bytes may stay.
 *
 * Why: on a filesystem without shared extents (ext4) each release is a full
 * copy of a ~110 MB executable of which a one-line change alters the last
 * few MB. Rewriting a pruned release's file where it provably already holds
 * the base's bytes writes only what differs, instead of filling 110 MB of
 * fresh page cache and disk. The spare is not a release: it is never listed,
 * never a rollback or delta base.
 */
import { closeSync, constants as C, fchmodSync, fstatSync, lstatSync, openSync, readSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { BLOCK_SIZE } from "../../protocol/delta.ts";
import type { SlotPaths } from "../../lib/paths.ts";
import { type BlockIndex, digestsOf, readIndex } from "./block-index.ts";
import { CHECKPOINT } from "./resumable-hash.ts";

/** Digest bytes per CHECKPOINT (a MiB of 16 KiB blocks). */
const DIGESTS_PER_SEGMENT = (CHECKPOINT / BLOCK_SIZE) * 32;

/**
 * A spare's file taken into staging, open for rewriting in place, with the
 * block digests recorded when its release was verified.
 */
export class HeldFile {
  constructor(
    readonly fd: number,
    readonly digests: Uint8Array,
  ) {}

  /**
   * Does the file still hold MiB `i` of a base whose digests and crc32 of
   * that MiB are given? Its recorded digests must equal the base's, and its
   * bytes on disk must still have the base's crc32 (a faulty disk, a hand
   * edit). `buf` is a CHECKPOINT-sized scratch buffer.
   */
  holds(i: number, baseDigests: Uint8Array, sum: number, buf: Uint8Array): boolean {
    const from = i * DIGESTS_PER_SEGMENT;
    const to = from + DIGESTS_PER_SEGMENT;
    return (
      this.digests.byteLength >= to &&
      baseDigests.byteLength >= to &&
      Buffer.compare(this.digests.subarray(from, to), baseDigests.subarray(from, to)) === 0 &&
      readSync(this.fd, buf, 0, CHECKPOINT, i * CHECKPOINT) === CHECKPOINT &&
      Bun.hash.crc32(buf) === sum
    );
  }
}

export class Spare {
  constructor(private paths: SlotPaths) {}

  /**
   * Makes releases/<id> (and its block index) the spare, replacing the last
   * one. Only a release with an index qualifies: without one, nothing shows
   * which of its bytes are which. False when it did not become the spare.
   */
  retire(id: string, index: BlockIndex): boolean {
    if (!index.has(id)) return false;
    // Two renames: a crash between leaves a spare without an index, which
    // take() ignores, and an index without its release, which prune removes.
    try {
      rmSync(this.paths.spare, { recursive: true, force: true });
      renameSync(this.paths.release(id), this.paths.spare);
      index.moveTo(id, this.paths.spareIndex);
      return true;
    } catch {
      rmSync(this.paths.spare, { recursive: true, force: true }); // a spare is only ever a saving
      return false;
    }
  }

  /**
   * Bytes of the spare's file `path` that a delta rewriting it in place
   * (take()) would not need anew, for the disk preflight; 0 when take()
   * would not hand it over.
   */
  inPlaceBytes(path: string): number {
    try {
      if (!lstatSync(this.paths.spare).isDirectory()) return 0;
      if (!digestsOf(readIndex(this.paths.spareIndex), path)) return 0;
      const st = lstatSync(join(this.paths.spare, path));
      return st.isFile() && st.nlink === 1 ? st.size : 0;
    } catch {
      return 0;
    }
  }

  /**
   * Moves the spare's file `path` to `dest` and opens it for rewriting; null
   * when there is no usable spare for it. The rest of the spare is removed
   * either way: it serves one update. The caller owns the returned fd.
   */
  take(path: string, dest: string): HeldFile | null {
    try {
      if (!lstatSync(this.paths.spare).isDirectory()) return null; // never through a symlink
      const digests = digestsOf(readIndex(this.paths.spareIndex), path);
      if (!digests) return null;
      renameSync(join(this.paths.spare, path), dest);
      const fd = openPlain(dest);
      return fd === null ? null : new HeldFile(fd, digests);
    } catch {
      return null;
    } finally {
      rmSync(this.paths.spare, { recursive: true, force: true });
    }
  }
}

/**
 * Opens `path` read-write if it is a plain file with no other name (writing
 * it must change nothing else: not a symlink, a hard link, or a file being
 * executed); otherwise removes this name and returns null.
 */
function openPlain(path: string): number | null {
  let fd: number | null = null;
  try {
    fd = openSync(path, C.O_RDWR | C.O_NOFOLLOW);
    const st = fstatSync(fd);
    if (!st.isFile() || st.nlink !== 1) throw new Error("not a plain file");
    fchmodSync(fd, 0o600);
    return fd;
  } catch {
    if (fd !== null) closeSync(fd);
    rmSync(path, { recursive: true, force: true });
    return null;
  }
}
