/**
 * A delta's inputs straight from the release's files (the executable itself):
 * one read pass gives the manifest's size and sha256 and every block digest,
 * with no tarball packed and unpacked. The tarball is made only when a host
 * needs a full push, once per push (core/push-release.ts).
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { BLOCK_SIZE } from "../protocol/delta.ts";
import type { Manifest } from "../protocol/manifest.ts";
import { DecnetError } from "../lib/errors.ts";
import type { NewFile } from "./delta2-encode.ts";

export interface HashedFile {
  size: number;
  sha256: string;
  /** sha256 of each BLOCK_SIZE block, 32 bytes each (a short last block counts). */
  digests: Uint8Array;
}

const CHUNK = 4 * 1024 * 1024;

/** Size, sha256 and block digests of `file` in one pass of 4 MiB reads. */
export function hashFile(file: string): HashedFile {
  const fd = openSync(file, "r");
  try {
    const size = fstatSync(fd).size;
    const whole = new Bun.CryptoHasher("sha256");
    const digests = new Uint8Array(Math.ceil(size / BLOCK_SIZE) * 32);
    const buf = Buffer.allocUnsafe(CHUNK);
    let pos = 0;
    let block = 0;
    while (pos < size) {
      const got = readSync(fd, buf, 0, Math.min(CHUNK, size - pos), pos);
      if (got <= 0) throw new DecnetError("failed", `${file} shrank while it was read`);
      const c = buf.subarray(0, got);
      whole.update(c);
      // Reads are whole blocks except at the end of the file.
      for (let off = 0; off < got; off += BLOCK_SIZE, block++) {
        digests.set(Bun.SHA256.hash(c.subarray(off, Math.min(got, off + BLOCK_SIZE))) as Uint8Array, block * 32);
      }
      pos += got;
    }
    return { size, sha256: whole.digest("hex"), digests };
  } finally {
    closeSync(fd);
  }
}

/** Reads exact ranges of a file (kept open until close()). */
export function rangeReader(file: string) {
  const fd = openSync(file, "r");
  return {
    read(offset: number, length: number): Uint8Array {
      const out = Buffer.allocUnsafe(length);
      for (let got = 0; got < length; ) {
        const n = readSync(fd, out, got, length - got, offset + got);
        if (n <= 0) throw new DecnetError("failed", `${file} is shorter than ${offset + length} bytes`);
        got += n;
      }
      return out;
    },
    close: () => closeSync(fd),
    [Symbol.dispose]: () => closeSync(fd),
  };
}

/**
 * The plan's inputs for `manifest` from local files (`local[path]`, e.g.
 * { decnet: "dist/decnet" }): each file hashed (or `hashed[path]` when the
 * caller already did, as when it made the manifest) and checked against the
 * manifest's size and sha256. Close the readers with dispose().
 */
export function planInputs(manifest: Manifest, local: Record<string, string>, hashed: Record<string, HashedFile> = {}): { files: NewFile[]; dispose(): void } {
  const readers: Array<ReturnType<typeof rangeReader>> = [];
  const dispose = () => {
    for (const r of readers) r.close();
  };
  try {
    const files = manifest.files.map((f): NewFile => {
      const path = local[f.path];
      if (!path) throw new DecnetError("failed", `no local copy of ${f.path} to plan a delta from`);
      const h = hashed[f.path] ?? hashFile(path);
      if (h.size !== f.size || h.sha256 !== f.sha256) throw new DecnetError("failed", `${path} is not the ${f.path} of release ${manifest.id.slice(0, 12)} (it changed since it was packed?)`);
      const r = rangeReader(path);
      readers.push(r);
      return { file: f, digests: h.digests, read: r.read };
    });
    return { files, dispose };
  } catch (e) {
    dispose();
    throw e;
  }
}
