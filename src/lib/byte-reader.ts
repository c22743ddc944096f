/**
 * Sequential reads over a stream of chunks: exact byte counts (handed on
 * chunk by chunk, never gathered), short fixed-size records, a line, and
 * "is there anything left". What a short read means is the caller's to say.
 */
export class ByteReader {
  private buf: Uint8Array = new Uint8Array(0);
  private done = false;
  /** Bytes handed out so far: where the next read starts. */
  offset = 0;

  constructor(private it: AsyncIterator<Uint8Array>) {}

  /** One more chunk into the buffer; false at the end of the stream. */
  private async more(): Promise<boolean> {
    if (this.done) return false;
    const r = await this.it.next();
    if (r.done) {
      this.done = true;
      return false;
    }
    this.buf = this.buf.byteLength ? Buffer.concat([this.buf, r.value]) : r.value;
    return true;
  }

  private advance(n: number): Uint8Array {
    const c = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    this.offset += n;
    return c;
  }

  /** Exactly `n` bytes (a small record, e.g. a 512-byte tar header), or null if the stream ends first. */
  async exact(n: number): Promise<Uint8Array | null> {
    while (this.buf.byteLength < n) if (!(await this.more())) return null;
    return this.advance(n);
  }

  /** The next line, without its newline; null if the stream ends first; throws `tooLong()` past `max` bytes. */
  async line(max: number, tooLong: () => Error): Promise<string | null> {
    for (let from = 0; ; ) {
      const nl = this.buf.indexOf(0x0a, from);
      if (nl >= 0) {
        if (nl > max) throw tooLong();
        const text = Buffer.from(this.buf.subarray(0, nl)).toString("utf8");
        this.advance(nl + 1);
        return text;
      }
      if (this.buf.byteLength > max) throw tooLong();
      from = this.buf.byteLength;
      if (!(await this.more())) return null;
    }
  }

  /** Hands exactly `n` bytes to `sink`, chunk by chunk; the count still missing when the stream ends first (0 when all came). */
  async take(n: number, sink: (c: Uint8Array) => void): Promise<number> {
    while (n > 0) {
      if (this.buf.byteLength === 0 && !(await this.more())) return n;
      const c = this.advance(Math.min(n, this.buf.byteLength));
      n -= c.byteLength;
      sink(c);
    }
    return 0;
  }

  /** Whatever comes next (buffered bytes or the next chunk), or null at the end. */
  async chunk(): Promise<Uint8Array | null> {
    if (this.buf.byteLength === 0 && !(await this.more())) return null;
    return this.advance(this.buf.byteLength);
  }

  async atEnd(): Promise<boolean> {
    while (this.buf.byteLength === 0) if (!(await this.more())) return true;
    return false;
  }
}
