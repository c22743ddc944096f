/**
 * Signalling one exact process, never whoever holds its pid now. A process
 * is named by (pid, start time); the signal goes through a pidfd opened
 * first (pidfd_open, Linux ≥ 5.3), so the start time read after opening it
 * is that of the process the pidfd pins — no pid reuse can slip in between
 * the check and the kill. A process of another uid is never signalled.
 * Without pidfds (an older kernel) the check and the kill are back to back.
 */
import { closeSync } from "node:fs";
import { libc } from "./libc.ts";
import { isAlive, startTime, uidOf } from "./procfs.ts";

/** One process: its pid and when it started (procfs.startTime). */
export interface Proc {
  pid: number;
  start: number;
}

const SYS_PIDFD_OPEN = 434n; // the same number on x86-64 and arm64
const SYS_PIDFD_SEND_SIGNAL = 424n;
const SIGNALS = { SIGTERM: 15, SIGKILL: 9 } as const;

/** The process as it is now, if `pid` is alive. */
export function procOf(pid: number): Proc | null {
  const start = startTime(pid);
  return start === null || !isAlive(pid) ? null : { pid, start };
}

/** Is `p` still the same process (same pid, same start)? */
export const isSame = (p: Proc) => startTime(p.pid) === p.start && isAlive(p.pid);

const euid = () => (typeof process.geteuid === "function" ? process.geteuid() : 0);

/**
 * Sends `sig` to `p` if it is still that process and runs as this user.
 * Returns whether it was sent.
 */
export function signalProc(p: Proc, sig: keyof typeof SIGNALS): boolean {
  const c = libc();
  const fd = c ? Number(c.syscall(SYS_PIDFD_OPEN, BigInt(p.pid), 0n, 0n, 0n)) : -1;
  try {
    if (startTime(p.pid) !== p.start || uidOf(p.pid) !== euid()) return false;
    if (fd >= 0) return Number(c!.syscall(SYS_PIDFD_SEND_SIGNAL, BigInt(fd), BigInt(SIGNALS[sig]), 0n, 0n)) === 0;
    process.kill(p.pid, sig);
    return true;
  } catch {
    return false;
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}
