/**
 * A rollout at scale (issue 16): 24 workers on loopback, `--canary 1 --batch
 * 25%`, against a push to one host — wall time per host, and the master's
 * peak RSS measured by GNU time (/usr/bin/time's %M is the process itself;
 * Bun's resourceUsage reports the largest of its children). `bun run bench`
 * runs it last; `bun bench/rollout.ts` runs it alone.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Fleet, release, runCli } from "../test/fleet/harness.ts";

const TIME = "/usr/bin/time";
export const ROLLOUT_WORKERS = 24;

export interface RolloutFigures {
  workers: number;
  batches: number;
  rollout_ms: number;
  per_host_ms: number;
  one_host_ms: number;
  /** Wall time per host in the rollout over a push to one host: below 1 means the batches overlap hosts well. */
  per_host_vs_one: number;
  master_peak_rss_mb: number;
  one_host_master_peak_rss_mb: number;
  /** The median host's own push time inside the rollout (its row's duration_ms). */
  median_host_ms: number;
}

/** `decnet …` under GNU time: wall time, the master's own peak RSS (kB), and stdout parsed as JSON. */
async function timedMaster(fleet: Fleet, args: string[]): Promise<{ ms: number; rssKb: number; json: any }> {
  const out = join(fleet.root, `time-${process.hrtime.bigint()}.txt`);
  const t0 = performance.now();
  const r = await runCli(TIME, ["-f", "%M", "-o", out, fleet.bin, ...args], fleet.env, { cwd: fleet.root, timeoutMs: 600_000 });
  const ms = Math.round(performance.now() - t0);
  if (r.code !== 0) throw new Error(`${args.slice(0, 2).join(" ")} failed (exit ${r.code}): ${r.stderr.trim().split("\n").slice(-3).join(" | ")}`);
  return { ms, rssKb: Number(readFileSync(out, "utf8").trim().split("\n").at(-1)), json: JSON.parse(r.stdout) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * A new fleet of `workers`: every host gets `seed` (whole, untimed), then
 * `single` goes to w1 alone (timed), then `rolled` to all of them as a
 * rollout (timed) — a release every host is one change away from, as in a
 * real rollout.
 */
export async function measureRollout(o: { seed: string; single: string; rolled: string; workers?: number; log?: (s: string) => void }): Promise<RolloutFigures> {
  if (!existsSync(TIME)) throw new Error(`${TIME} (GNU time) is needed for the master's peak RSS: apt-get install time`);
  const workers = o.workers ?? ROLLOUT_WORKERS;
  await using fleet = await Fleet.create({ workers });
  o.log?.(`rollout: ${workers} workers up; seeding`);
  await fleet.startAll();
  const seeded = await fleet.update(["--all", "--artifact", o.seed, "--concurrency", "12"]);
  if (seeded.code !== 0) throw new Error(`seeding failed: ${seeded.stderr}`);
  o.log?.("rollout: one host, then all of them");
  const one = await timedMaster(fleet, ["swarm", "update", "--host", "w1", "--artifact", o.single, "--json"]);
  const all = await timedMaster(fleet, ["swarm", "update", "--all", "--artifact", o.rolled, "--canary", "1", "--batch", "25%", "--json"]);
  const rows = all.json.hosts as Array<{ agent: string; duration_ms: number }>;
  if (rows.length !== workers || rows.some((h) => h.agent !== "updated")) throw new Error(`the rollout did not update every host: ${JSON.stringify(all.json.rollout.tally)}`);
  const per = all.ms / workers;
  return {
    workers,
    batches: all.json.rollout.batches.length,
    rollout_ms: all.ms,
    per_host_ms: Math.round(per),
    one_host_ms: one.ms,
    per_host_vs_one: Math.round((per / one.ms) * 100) / 100,
    master_peak_rss_mb: Math.round(all.rssKb / 1024),
    one_host_master_peak_rss_mb: Math.round(one.rssKb / 1024),
    median_host_ms: median(rows.map((h) => h.duration_ms)),
  };
}

/** The table row `bun run bench` prints. */
export function rolloutRow(f: RolloutFigures): [string, string, string] {
  return [
    `rollout, ${f.workers} hosts (--canary 1 --batch 25%)`,
    `${(f.per_host_ms / 1000).toFixed(2)} s/host = ${f.per_host_vs_one.toFixed(2)}× a 1-host push (${(f.one_host_ms / 1000).toFixed(2)} s); ${(f.rollout_ms / 1000).toFixed(1)} s in ${f.batches} batches; master peak RSS ${f.master_peak_rss_mb} MB (1 host: ${f.one_host_master_peak_rss_mb} MB)`,
    "—",
  ];
}

if (import.meta.main) {
  const [v1, v2, v3] = await Promise.all([release("v1"), release("v2"), release("v3")]);
  const f = await measureRollout({ seed: v1.file, single: v3.file, rolled: v2.file, log: (s) => process.stderr.write(`bench: ${s}\n`) });
  const [k, v] = rolloutRow(f);
  process.stdout.write(`${k}  ${v}\n${JSON.stringify(f, null, 2)}\n`);
}
