/**
 * A gzip stream decompressed as it is read, under a limit on decompressed
 * bytes (a few MB on the wire can expand to GBs), with a truncated stream
 * told apart from a corrupt one.
 */
import { DecnetError } from "./errors.ts";

/**
 * Yields the decompressed chunks of `src` (every gzip member, in order), and
 * throws `bad_archive` past `maxBytes` of output, on a stream that ends early
 * ("truncated <what>") or one that is not gzip ("corrupt <what>"). An error
 * from `src` itself passes through as it is. The decompressor is fed by hand,
 * not through pipeThrough: Bun 1.4.5 raises an uncaught "inflate failed"
 * when a piped source errors mid-member, which would end the daemon.
 */
export async function* gunzip(src: AsyncIterable<Uint8Array>, maxBytes: number, what: string): AsyncGenerator<Uint8Array> {
  const ds = new DecompressionStream("gzip");
  const writer = ds.writable.getWriter();
  const reader = ds.readable.getReader();
  let sourceError: { e: unknown } | null = null;
  // Feeding runs beside reading: the writer's promises settle only as output is read.
  const feeding = (async () => {
    const it = src[Symbol.asyncIterator]();
    for (;;) {
      let r: IteratorResult<Uint8Array>;
      try {
        r = await it.next();
      } catch (e) {
        sourceError = { e };
        await writer.abort(e).catch(() => {});
        return;
      }
      // The decompressor's own failures reach the reader; here they only stop the feeding.
      try {
        if (r.done) return await writer.close();
        await writer.write(r.value as Uint8Array<ArrayBuffer>);
      } catch {
        return;
      }
    }
  })();
  let n = 0;
  try {
    for (;;) {
      let r: Awaited<ReturnType<typeof reader.read>>;
      try {
        r = await reader.read();
      } catch (e) {
        if (sourceError) throw (sourceError as { e: unknown }).e;
        const msg = (e as Error).message;
        if (/unexpected end/i.test(msg)) throw new DecnetError("bad_archive", `truncated ${what}: the gzip stream ends early`);
        throw new DecnetError("bad_archive", `corrupt ${what}: not a valid gzip stream (${msg})`);
      }
      if (r.done) break;
      n += r.value.byteLength;
      if (n > maxBytes) throw new DecnetError("bad_archive", `${what} expands to more than ${maxBytes} bytes`);
      yield r.value;
    }
    await feeding;
    if (sourceError) throw (sourceError as { e: unknown }).e;
  } finally {
    // Stops the decompressor. The feeder is not awaited: it may be waiting on
    // the source (the network), which its owner cancels; it then ends at once.
    await reader.cancel().catch(() => {});
    await writer.abort().catch(() => {});
  }
}
