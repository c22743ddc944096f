/**
 * Gzipped tar streams through node-tar, with no policy: writing a release
 * tarball from files on disk, and reading one entry by entry. What is allowed
 * in an upload is decided by the caller (daemons/updater/stage.ts).
 */
import * as tar from "tar";

/** Writes `names` (relative to cwd, in that order) to a .tar.gz. */
export async function writeTarball(file: string, cwd: string, names: string[]): Promise<void> {
  // portable: no uid/gid/owner names or atimes, so the archive is reproducible-ish.
  await tar.c({ gzip: { level: 6 }, cwd, portable: true, file, noDirRecurse: true }, names);
}

export interface RawEntry {
  path: string;
  /** node-tar type name: File, OldFile, Directory, SymbolicLink, Link, CharacterDevice, ... */
  type: string;
  size: number;
  mode: number;
  linkpath: string;
  /** Called with every data chunk; throw to abort the archive. */
  onData(fn: (chunk: Uint8Array) => void): void;
  onEnd(fn: () => void): void;
  /** Skip this entry's data. */
  skip(): void;
}

/**
 * Feeds a byte stream through a tar parser. `onEntry` sees each entry's raw
 * header before any data; any throw (there or in a data callback) or archive
 * error rejects, and the caller cleans up.
 */
export async function readTarball(src: AsyncIterable<Uint8Array>, onEntry: (e: RawEntry) => void): Promise<void> {
  const parser = new tar.Parser({ strict: true });
  let failure: unknown;
  const fail = (e: unknown) => {
    failure ??= e;
    parser.abort(e instanceof Error ? e : new Error(String(e)));
  };
  parser.on("entry", (e: tar.ReadEntry) => {
    if (failure) return e.resume();
    const entry: RawEntry = {
      path: e.path,
      type: e.type,
      size: e.size ?? 0,
      mode: e.mode ?? 0,
      linkpath: e.linkpath ?? "",
      onData: (fn) => e.on("data", (c: Buffer) => { try { if (!failure) fn(c); } catch (err) { fail(err); } }),
      onEnd: (fn) => e.on("end", () => { try { if (!failure) fn(); } catch (err) { fail(err); } }),
      skip: () => e.resume(),
    };
    try {
      onEntry(entry);
    } catch (err) {
      fail(err);
      e.resume();
    }
  });
  // A truncated gzip raises "error" and never "end": settle on either.
  const settled = new Promise<void>((resolve) => {
    parser.on("end", () => resolve());
    parser.on("close", () => resolve());
    parser.on("abort", () => resolve());
    parser.on("error", (err: Error) => { failure ??= err; resolve(); });
  });
  parser.on("warn", (code: string, message: string | Error) => {
    failure ??= new Error(`${code}: ${message instanceof Error ? message.message : message}`);
  });
  try {
    for await (const chunk of src) {
      if (failure) break;
      if (!parser.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))) {
        // A corrupt gzip errors synchronously inside write(): never wait on a
        // drain that will not come.
        if (failure) break;
        await Promise.race([new Promise<void>((r) => parser.once("drain", r)), settled]);
      }
    }
  } catch (e) {
    failure ??= e;
  }
  if (!failure) parser.end();
  else parser.abort(failure instanceof Error ? failure : new Error(String(failure)));
  await settled;
  if (failure) throw failure;
}
