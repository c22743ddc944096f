/**
 * A strict streamed tar reader for uploads: raw ustar headers one by one,
 * nothing interpreted behind the caller's back (pax and GNU extension entries
 * are handed over as entries, never applied), end-of-archive where the first
 * zero block is, and nothing but bounded zero padding after it. What may be
 * in a release is decided by the caller (daemons/updater/stage.ts).
 */
import { ByteReader } from "./byte-reader.ts";
import { DecnetError } from "./errors.ts";

const BLOCK = 512;
const bad = (message: string) => new DecnetError("bad_archive", message);

/** Type flags by name, for messages: everything tar implementations are known to write. */
const KINDS: Record<string, string> = {
  "0": "regular file",
  "\0": "regular file",
  "1": "hard link",
  "2": "symlink",
  "3": "character device",
  "4": "block device",
  "5": "directory",
  "6": "FIFO",
  "7": "contiguous file",
  g: "pax global header",
  x: "pax extended header",
  A: "Solaris ACL",
  D: "GNU dump dir",
  I: "inode metadata",
  K: "GNU long link name",
  L: "GNU long name",
  M: "GNU multi-volume continuation",
  N: "GNU old long name",
  S: "GNU sparse file",
  V: "volume label",
  X: "old pax extended header",
  Z: "compressed file",
};

export interface TarHeader {
  /** The ustar name, joined to its prefix (POSIX ustar only). */
  path: string;
  /** The raw type flag character ("0", "\0", "x", "S", ...). */
  typeflag: string;
  /** What the type flag names, for messages ("directory", "GNU sparse file", "type 'q'"). */
  kind: string;
  /** Declared size of the entry's data, as the header says. */
  size: number;
  mode: number;
  linkpath: string;
  /** Offset of the header in the uncompressed stream. */
  offset: number;
}

const zero = (b: Uint8Array) => b.every((x) => x === 0);
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A NUL-terminated text field. */
function text(h: Uint8Array, off: number, len: number, what: string, at: number): string {
  const f = h.subarray(off, off + len);
  const end = f.indexOf(0);
  try {
    return utf8.decode(end < 0 ? f : f.subarray(0, end));
  } catch {
    throw bad(`tar header at byte ${at}: its ${what} is not UTF-8`);
  }
}

/** An octal number field: optional leading spaces, digits, then only NULs or spaces. Base-256 is refused. */
function octal(h: Uint8Array, off: number, len: number, what: string, at: number): number {
  const f = h.subarray(off, off + len);
  if (f[0]! & 0x80) throw bad(`tar header at byte ${at}: its ${what} is in base-256, which no release needs`);
  const s = Buffer.from(f).toString("latin1");
  const m = /^ *([0-7]+)[ \0]*$/.exec(s);
  if (!m) throw bad(`tar header at byte ${at}: its ${what} ${JSON.stringify(s.replace(/\0+$/, ""))} is not an octal number`);
  return Number.parseInt(m[1]!, 8);
}

/** Parses one non-zero header block. */
function parseHeader(h: Uint8Array, at: number): TarHeader {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  if (octal(h, 148, 8, "checksum", at) !== sum) throw bad(`tar header at byte ${at} has a bad checksum: not a tar archive, or a corrupt one`);
  const magic = Buffer.from(h.subarray(257, 265)).toString("latin1");
  const posix = magic === "ustar\u000000";
  if (!posix && magic !== "ustar  \0") throw bad(`tar header at byte ${at} is not ustar (pre-POSIX tar archives are not accepted)`);
  const name = text(h, 0, 100, "name", at);
  const prefix = posix ? text(h, 345, 155, "prefix", at) : "";
  const typeflag = String.fromCharCode(h[156]!);
  return {
    path: prefix ? `${prefix}/${name}` : name,
    typeflag,
    kind: KINDS[typeflag] ?? `type ${JSON.stringify(typeflag)}`,
    size: octal(h, 124, 12, "size", at),
    mode: octal(h, 100, 8, "mode", at),
    linkpath: text(h, 157, 100, "link name", at),
    offset: at,
  };
}

export class TarReader {
  private src: ByteReader;
  /** The entry whose data has not been read yet. */
  private pending: TarHeader | null = null;

  constructor(plain: AsyncIterator<Uint8Array>) {
    this.src = new ByteReader(plain);
  }

  /** The next entry's header, or null at end-of-archive. The previous entry's data must have been read. */
  async next(): Promise<TarHeader | null> {
    if (this.pending) throw new Error(`the data of ${this.pending.path} was not read`);
    const at = this.src.offset;
    const h = await this.src.exact(BLOCK);
    if (!h) throw bad(at === 0 ? "empty archive" : `truncated archive: it ends at byte ${at} without an end-of-archive marker`);
    if (zero(h)) return null;
    this.pending = parseHeader(h, at);
    return this.pending;
  }

  /** Hands the current entry's data to `sink` chunk by chunk, then skips its padding. */
  async data(sink: (c: Uint8Array) => void): Promise<void> {
    const e = this.pending;
    if (!e) throw new Error("no entry to read");
    const missing = await this.src.take(e.size, sink);
    if (missing) throw bad(`truncated archive: ${e.path} ends ${missing} bytes short of its ${e.size}`);
    const pad = (BLOCK - (e.size % BLOCK)) % BLOCK;
    if (pad && (await this.src.take(pad, () => {}))) throw bad(`truncated archive: it ends inside the padding after ${e.path}`);
    this.pending = null;
  }

  /**
   * After end-of-archive: the second zero block, then only zeros (a tar
   * writer pads to its record size) up to `maxPadding` bytes, then the end
   * of the stream. Anything else is refused, and reading stops there.
   */
  async end(maxPadding: number): Promise<void> {
    const at = this.src.offset;
    const second = await this.src.exact(BLOCK);
    if (!second) throw bad(`truncated archive: a single zero block at byte ${at - BLOCK}, the end-of-archive marker is two`);
    if (!zero(second)) throw bad(`a tar entry follows a zero block at byte ${at - BLOCK}: a lone zero block is not accepted`);
    let padding = 0;
    for (let c = await this.src.chunk(); c; c = await this.src.chunk()) {
      if (!zero(c)) throw bad(`bytes after the end of the archive (byte ${this.src.offset - c.byteLength + c.findIndex((x) => x !== 0)})`);
      padding += c.byteLength;
      if (padding > maxPadding) throw bad(`more than ${maxPadding} bytes of padding after the end of the archive`);
    }
  }
}

/**
 * The records of a pax extended header ("<len> <key>=<value>\n" each, the
 * length counting the whole record), in order; throws on any malformed one.
 */
export function paxRecords(data: Uint8Array): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  let pos = 0;
  while (pos < data.byteLength) {
    const sp = data.indexOf(0x20, pos);
    const lenText = sp < 0 ? "" : Buffer.from(data.subarray(pos, sp)).toString("latin1");
    const len = /^[1-9][0-9]{0,6}$/.test(lenText) ? Number(lenText) : 0;
    if (!len || pos + len > data.byteLength || data[pos + len - 1] !== 0x0a) throw bad(`malformed pax record at byte ${pos} of its header`);
    let rec: string;
    try {
      rec = utf8.decode(data.subarray(sp + 1, pos + len - 1));
    } catch {
      throw bad(`pax record at byte ${pos} is not UTF-8`);
    }
    const eq = rec.indexOf("=");
    if (eq <= 0) throw bad(`malformed pax record at byte ${pos} of its header`);
    out.push([rec.slice(0, eq), rec.slice(eq + 1)]);
    pos += len;
  }
  return out;
}
