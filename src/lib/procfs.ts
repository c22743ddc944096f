/**
 * Reading /proc: whether a pid is really alive (a zombie is dead), a process's
 * argv, executable and cwd, and which processes hold a listening TCP socket.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { isIPv4 } from "node:net";

/** The state letter from /proc/<pid>/stat, or null when there is no such process. */
export function procState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm may contain spaces and parentheses: the state follows the last ')'.
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  } catch {
    return null;
  }
}

/**
 * When a process started (clock ticks since boot, /proc/<pid>/stat field
 * 22): with the pid, the identity of one process — a pid the kernel hands
 * out again gets another start time.
 */
export function startTime(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const t = Number(fields[19]); // field 22 overall; fields after comm start at 3
    return Number.isFinite(t) ? t : null;
  } catch {
    return null;
  }
}

/** Clock ticks per second of /proc's times: USER_HZ, 100 on every Linux ABI decnet targets (x86-64, arm64). */
const USER_HZ = 100;

/** Seconds process `pid` has run (its start time against /proc/uptime), or null when there is no such process. */
export function uptimeSeconds(pid: number): number | null {
  const start = startTime(pid);
  if (start === null) return null;
  try {
    const up = Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]);
    return Number.isFinite(up) ? Math.max(0, Math.round(up - start / USER_HZ)) : null;
  } catch {
    return null;
  }
}

/** The effective uid of a process, or null when there is no such process. */
export function uidOf(pid: number): number | null {
  try {
    const m = /^Uid:\s+\d+\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Alive means it exists and is neither a zombie nor dead. */
export function isAlive(pid: number): boolean {
  const s = procState(pid);
  return s !== null && s !== "Z" && s !== "X" && s !== "x";
}

export function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter((s, i, a) => i < a.length - 1 || s !== "");
  } catch {
    return [];
  }
}

export function readLink(path: string): string | null {
  try {
    return readlinkSync(path);
  } catch {
    return null;
  }
}

export function allPids(): number[] {
  return readdirSync("/proc").filter((d) => /^\d+$/.test(d)).map(Number);
}

/** "127.0.1.1" → "0101007F" as /proc/net/tcp prints it (host byte order, x86/arm LE). */
function hexAddr4(ip: string): string {
  return ip.split(".").map((o) => Number(o).toString(16).padStart(2, "0")).reverse().join("").toUpperCase();
}

/** A listening TCP socket, as /proc/net/tcp{,6} shows it. */
export interface Listener {
  inode: number;
  uid: number;
  /** From /proc/net/tcp6: it may be IPV6_V6ONLY, which /proc does not show. */
  v6: boolean;
}

/**
 * Listening TCP sockets on `port` bound to `ip` or to a wildcard: those that
 * could be taking connections for `ip:port`.
 */
export function listeners(ip: string, port: number): Listener[] {
  const want = port.toString(16).toUpperCase().padStart(4, "0");
  const addrs = new Set(["00000000", "00000000000000000000000000000000"]);
  if (isIPv4(ip)) addrs.add(hexAddr4(ip));
  const out: Listener[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = readFileSync(table, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== "0A") continue; // 0A = LISTEN
      const [addr, p] = f[1]!.split(":");
      if (p === want && addrs.has(addr!)) out.push({ inode: Number(f[9]), uid: Number(f[7]), v6: table.endsWith("6") });
    }
  }
  return out;
}

/** Inodes of listening TCP sockets that would take `ip:port` (see listeners()). */
export function listeningInodes(ip: string, port: number): Set<number> {
  return new Set(listeners(ip, port).map((l) => l.inode));
}

/** Pids with an open fd on any of these socket inodes. */
export function pidsHoldingSockets(inodes: Set<number>): number[] {
  if (inodes.size === 0) return [];
  const want = new Set([...inodes].map((i) => `socket:[${i}]`));
  const out: number[] = [];
  for (const pid of allPids()) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      const l = readLink(`/proc/${pid}/fd/${fd}`);
      if (l && want.has(l)) {
        out.push(pid);
        break;
      }
    }
  }
  return out;
}
