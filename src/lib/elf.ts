/** An executable's first bytes read from disk, for protocol/target.ts to judge (bounded: 20 bytes). */
import { closeSync, openSync, readSync } from "node:fs";
import { ELF_HEADER_BYTES, type ExecutableKind, executableKind } from "../protocol/target.ts";

export function fileKind(path: string): ExecutableKind {
  const fd = openSync(path, "r");
  try {
    const b = new Uint8Array(ELF_HEADER_BYTES);
    const n = readSync(fd, b, 0, b.length, 0);
    return executableKind(b.subarray(0, n));
  } finally {
    closeSync(fd);
  }
}
