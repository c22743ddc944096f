/**
 * What the soak measures about a worker between steps, from /proc and the
 * disk (never from the daemon's own word): a process's fds, RSS, threads and
 * open deleted files; the install dir's disk use apart from its logs; and a
 * seeded random source, so a run can be replayed with its seed.
 */
import { lstatSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { deletedFds } from "../../src/lib/fd-audit.ts";

export interface ProcSample {
  fds: number;
  rssMb: number;
  threads: number;
  /** fds on files deleted under the install dir, and the bytes they hold. */
  deletedFds: number;
  deletedBytes: number;
}

export function procSample(pid: number, installDir: string): ProcSample | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const deleted = deletedFds(installDir, pid);
    return {
      fds: readdirSync(`/proc/${pid}/fd`).length,
      rssMb: Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 102.4) / 10,
      threads: Number(/Threads:\s+(\d+)/.exec(status)![1]),
      deletedFds: deleted.length,
      deletedBytes: deleted.reduce((n, d) => n + d.bytes, 0),
    };
  } catch {
    return null; // gone
  }
}

/** Bytes on disk under `dir` (allocated blocks, links not followed), logs apart. */
export function diskUse(dir: string): { bytes: number; logBytes: number } {
  let bytes = 0;
  let logBytes = 0;
  const walk = (d: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(d, n);
      try {
        const st = lstatSync(p);
        if (st.isDirectory()) walk(p);
        else if (n.endsWith(".log")) logBytes += st.blocks * 512;
        else bytes += st.blocks * 512;
      } catch {} // removed meanwhile
    }
  };
  walk(dir);
  return { bytes, logBytes };
}

/** mulberry32: a small seeded generator; the same seed replays the same run. */
export function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    /** Log-uniform in [lo, hi]: as many small values as large ones. */
    logUniform: (lo: number, hi: number) => Math.round(lo * (hi / lo) ** next()),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!,
    weighted: <K extends string>(w: Record<K, number>): K => {
      const entries = Object.entries(w) as Array<[K, number]>;
      let r = next() * entries.reduce((s, [, x]) => s + x, 0);
      for (const [k, x] of entries) if ((r -= x) < 0) return k;
      return entries.at(-1)![0];
    },
  };
}

export const median = (xs: number[]) => {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};
