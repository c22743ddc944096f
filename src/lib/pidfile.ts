/**
 * Pid files that name one process, not a number the kernel may hand out
 * again: `<pid> <start time>\n` (procfs.startTime). Written by the daemon
 * itself and by whoever spawned it; removed by the daemon only while it
 * still names it. Not forced to disk: a pid means nothing after a power cut.
 */
import { readFileSync, unlinkSync } from "node:fs";
import { writeFileAtomic } from "./atomic.ts";
import { startTime } from "./procfs.ts";
import type { Proc } from "./signal.ts";

export function writePidFile(path: string, pid: number): void {
  writeFileAtomic(path, `${pid} ${startTime(pid) ?? 0}\n`, 0o644, { durable: false });
}

/** The process a pid file names; `start` is null for a file from before start times were written. */
export function readPidFile(path: string): { pid: number; start: number | null } | null {
  try {
    const [p, s] = readFileSync(path, "utf8").trim().split(/\s+/);
    const pid = Number(p);
    if (!Number.isInteger(pid) || pid <= 1) return null;
    const start = s === undefined ? null : Number(s);
    return { pid, start: Number.isInteger(start) && start! > 0 ? start : null };
  } catch {
    return null;
  }
}

/** Is `p` the process this pid file names? */
export function namedBy(path: string, p: Proc): boolean {
  const f = readPidFile(path);
  return f !== null && f.pid === p.pid && f.start === p.start;
}

/** Removes the pid file if it still names this process (a successor may own it). */
export function removeOwnPidFile(path: string): void {
  const f = readPidFile(path);
  if (f?.pid === process.pid) {
    try { unlinkSync(path); } catch {}
  }
}
