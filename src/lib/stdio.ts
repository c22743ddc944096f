/**
 * Synchronous writes to stdout and stderr with write(2). The first touch of
 * process.stdout or process.stderr builds Node's stream machinery, ~12 ms of a
 * ~25 ms start; the agent, the updater and `decnet version` (the install
 * check) start on every push, on every host, so they write directly. Also:
 * nothing is left queued when a command exits.
 */
import { writeSync } from "node:fs";

/** Set once a descriptor refused a synchronous write (a full non-blocking pipe). */
const queued = new Set<1 | 2>();

function write(fd: 1 | 2, text: string): void {
  const stream = () => (fd === 1 ? process.stdout : process.stderr);
  if (queued.has(fd)) {
    stream().write(text);
    return;
  }
  const buf = Buffer.from(text);
  let off = 0;
  try {
    while (off < buf.byteLength) off += writeSync(fd, buf, off);
  } catch (e) {
    // EAGAIN: let the stream queue the rest, and everything after it, in order.
    // Anything else (EPIPE: the reader is gone) is not worth failing for.
    if ((e as NodeJS.ErrnoException).code === "EAGAIN") {
      queued.add(fd);
      stream().write(buf.subarray(off));
    }
  }
}

export const out = (text: string): void => write(1, text);
export const err = (text: string): void => write(2, text);
