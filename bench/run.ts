/**
 * `bun run bench`: the performance figures of issue 7, measured in one run on
 * this machine, as ratios where a ratio is the point. Builds a chain of
 * releases, each one line of app code on from the last (so every timed push
 * brings code the worker has never had), starts 12 workers on loopback, and
 * measures:
 * bytes of a delta push against the full release (with and without
 * --bytecode), wall time of full and delta pushes to one host, 12 hosts
 * against 1 (at steady state, where a worker rewrites a pruned release in
 * place, and without that spare, as on a worker's first pushes), rollback, the updater's peak RSS during a full upload against its
 * idle RSS, `decnet version` start-up and an agent's start-up to /health;
 * last, in a fleet of its own, a rollout over 24 hosts (bench/rollout.ts).
 * Prints a table, writes JSON.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { build } from "../build.ts";
import { Fleet, ROOT, runCli, until } from "../test/fleet/harness.ts";
import type { HostResult } from "../src/core/swarm/push.ts";
import { agentArgv } from "../src/lib/config.ts";
import { localHealth } from "../src/lib/control-socket.ts";
import { isAlive } from "../src/lib/procfs.ts";
import { measureRollout, ROLLOUT_WORKERS, rolloutRow } from "./rollout.ts";

const OUT = join(ROOT, "bench/results");
const work = mkdtempSync(join(tmpdir(), "decnet-bench-"));
const log = (s: string) => process.stderr.write(`bench: ${s}\n`);

/**
 * A copy of the source tree; with `step`, one line of app code changed, one
 * character longer per step: every step shifts the app code after it, as
 * adding a line does.
 */
function tree(name: string, step: number | null): string {
  const dir = join(work, name);
  mkdirSync(dir);
  for (const f of ["src", "build.ts", "package.json", "tsconfig.json"]) cpSync(join(ROOT, f), join(dir, f), { recursive: true });
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
  if (step !== null) {
    const main = join(dir, "src/main.ts");
    const text = readFileSync(main, "utf8");
    const changed = text.replace('"Keep a fleet of workers on the code you choose"', `"Keep a fleet of workers on the code you choose, step ${"i".repeat(step)}"`);
    if (changed === text) throw new Error("the one-line change did not apply");
    writeFileSync(main, changed);
  }
  return dir;
}

interface Built { bin: string; file: string; size: number }

async function release(tag: string, step: number | null, version: string): Promise<Built> {
  const bin = join(work, `decnet-${tag}`);
  await build({ root: tree(tag, step), out: bin, version });
  const file = join(work, `${tag}.tar.gz`);
  const r = await runCli(bin, ["release", "pack", bin, "--out", file], {});
  if (r.code !== 0) throw new Error(r.stderr);
  return { bin, file, size: Bun.file(file).size };
}

/**
 * Releases a (as is), b (one line of app code changed), c (that line and a
 * new, longer version string: what a real release usually is), and `steps`
 * more, each one line apart from the one before (b is step 1): every timed
 * push installs code the worker has never had, as a real rollout does.
 */
async function releaseSet(bytecode: boolean, steps: number) {
  const tag = bytecode ? "bc" : "plain";
  process.env.DECNET_BYTECODE = bytecode ? "1" : "0";
  const a = await release(`${tag}-a`, null, "9.0.0-bench");
  const chain: Built[] = [];
  for (let i = 1; i <= steps; i++) chain.push(await release(`${tag}-s${i}`, i, "9.0.0-bench"));
  const c = await release(`${tag}-c`, 1, "9.0.10-bench.1");
  delete process.env.DECNET_BYTECODE;
  return { a, b: chain[0]!, c, chain };
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: Math.round(performance.now() - t0), value };
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : 0;
}

/** The middle value (the upper middle for an even count). */
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

type Row = HostResult;
type Sets = Awaited<ReturnType<typeof releaseSet>>;

/** What every measurement works with, and the figures they fill in. */
interface Ctx {
  fleet: Fleet;
  hosts: string[];
  main: Sets;
  alt: Sets;
  /** `swarm update --json` to `names`; throws unless every row is updated. */
  push(names: string[], file: string, extra?: string[]): Promise<Row[]>;
  /** A timed delta push that must have been a delta everywhere, with or without a spare as asked. */
  deltaPush(names: string[], file: string, spare: boolean): Promise<{ ms: number; rows: Row[] }>;
  /** The next release of the chain: one the workers have never had. */
  nextRelease(): Built;
  r: Record<string, any>;
}

const RUNS = 3;

/**
 * The measurements, in the order they run (each leaves the fleet as the next
 * expects). Every figure is read from a structured field: the push rows'
 * `transfer` and `install`, never prose or a log line.
 */
const measurements: Array<{ name: string; run: (c: Ctx) => Promise<void> }> = [
  {
    name: "full push to one host (w1), with the updater's RSS sampled",
    async run(c) {
      const pid = c.fleet.pid(c.fleet.worker("w1"), "updater");
      const idle = rssKb(pid);
      let peak = idle;
      const sampler = setInterval(() => { peak = Math.max(peak, rssKb(pid)); }, 5);
      const full = await timed(() => c.push(["w1"], c.main.a.file, ["--full"]));
      clearInterval(sampler);
      Object.assign(c.r, { full_push_ms: full.ms, updater_rss_idle_mb: Math.round(idle / 1024), updater_rss_peak_mb: Math.round(peak / 1024), updater_rss_growth_mb: Math.round((peak - idle) / 1024) });
    },
  },
  {
    // Steady state: a worker that has pruned a release keeps it as a spare
    // and rewrites it in place on the next update (keep 3: its fourth release
    // prunes the first). Timed pushes then alternate with and without a spare
    // ("cold": a worker's first pushes). Loopback timings on a shared 2-core
    // machine vary run to run: each figure is the median of RUNS.
    name: "every host to steady state (four releases), then delta pushes to one host with and without a spare",
    async run(c) {
      for (const r of [c.main.a, ...c.main.chain.slice(0, 3)]) await c.push(c.hosts, r.file, ["--concurrency", "12"]);
      const one = await alternate(c, ["w1"]);
      const first = one.steady[0]!.rows[0]!;
      Object.assign(c.r, {
        delta_bytes: first.transfer!.bytes,
        delta_ratio: first.transfer!.bytes / c.main.chain[3]!.size,
        delta_push_ms: median(one.steady.map((d) => d.ms)),
        without_spare: { delta_push_ms: median(one.cold.map((d) => d.ms)) },
        runs_ms: { delta_1: one.steady.map((d) => d.ms), without_spare: { delta_1: one.cold.map((d) => d.ms) } },
        install_delta_1: first.install,
      });
    },
  },
  {
    name: `rollback on one host (w1), ${RUNS} times (each swaps current and previous)`,
    async run(c) {
      const ms: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const rb = await timed(() => c.fleet.cli(["swarm", "rollback", "--host", "w1"]));
        if (rb.value.code !== 0) throw new Error(rb.value.stderr);
        ms.push(rb.ms);
      }
      c.r.rollback_ms = median(ms);
      c.r.runs_ms.rollback = ms;
    },
  },
  {
    name: `delta push to all 12 at once, ${RUNS} times with a spare and ${RUNS} without`,
    async run(c) {
      const twelve = await alternate(c, c.hosts);
      c.r.delta_push_12_ms = median(twelve.steady.map((d) => d.ms));
      c.r.twelve_vs_one = c.r.delta_push_12_ms / c.r.delta_push_ms;
      c.r.without_spare.delta_push_12_ms = median(twelve.cold.map((d) => d.ms));
      c.r.without_spare.twelve_vs_one = c.r.without_spare.delta_push_12_ms / c.r.without_spare.delta_push_ms;
      c.r.runs_ms.delta_12 = twelve.steady.map((d) => d.ms);
      c.r.runs_ms.without_spare.delta_12 = twelve.cold.map((d) => d.ms);
    },
  },
  {
    name: "a new version, and the same changes with --bytecode builds",
    async run(c) {
      const deltaBytes = async (host: string, from: Built, to: Built) => {
        await c.push([host], from.file, ["--full"]);
        const row = (await c.push([host], to.file))[0]!;
        if (row.transfer?.mode !== "delta") throw new Error(`${host}: expected a delta, got ${JSON.stringify(row.transfer)}`);
        return row.transfer.bytes;
      };
      c.r.version_delta_bytes = await deltaBytes("w3", c.main.a, c.main.c);
      c.r.version_delta_ratio = c.r.version_delta_bytes / c.main.c.size;
      const altDelta = await deltaBytes("w2", c.alt.a, c.alt.b);
      const altVersion = await deltaBytes("w4", c.alt.a, c.alt.c);
      c.r.with_bytecode = { release_bytes: c.alt.a.size, delta_bytes: altDelta, delta_ratio: altDelta / c.alt.b.size, version_delta_bytes: altVersion, version_delta_ratio: altVersion / c.alt.c.size };
    },
  },
  {
    name: "decnet version start-up (30 runs each)",
    async run(c) {
      const startup = (bin: string) => {
        const ms: number[] = [];
        for (let i = 0; i < 30; i++) {
          const t0 = performance.now();
          Bun.spawnSync([bin, "version"], { stdout: "ignore" });
          ms.push(performance.now() - t0);
        }
        return Math.round(median(ms) * 10) / 10;
      };
      c.r.version_startup_ms = { default: startup(c.main.a.bin), with_bytecode: startup(c.alt.a.bin) };
    },
  },
  {
    name: "agent start-up, spawn to answering /health on agent.sock (15 runs, on w12 with its updater stopped)",
    async run(c) {
      const w12 = c.fleet.worker("w12");
      const pids = [c.fleet.pid(w12, "updater"), c.fleet.pid(w12, "agent")];
      for (const pid of pids) process.kill(pid, "SIGTERM");
      await until(() => !pids.some(isAlive), "w12's updater and agent to stop");
      const ms: number[] = [];
      for (let i = 0; i < 15; i++) {
        const t0 = performance.now();
        const p = Bun.spawn([join(w12.installDir, "current/decnet"), ...agentArgv({ host: w12.address, agentPort: 8765, agentDir: w12.agentBundle, installDir: w12.installDir })], { stdout: "ignore", stderr: "ignore", env: { ...process.env, ...c.fleet.env } });
        await until(() => localHealth(w12.paths.agentSock, 200), "the agent to answer", 15_000, 1);
        ms.push(performance.now() - t0);
        p.kill("SIGTERM");
        await p.exited;
      }
      c.r.agent_startup_ms = Math.round(median(ms) * 10) / 10;
    },
  },
  {
    // Its own fleet, so the 12-host figures above are untouched: every host seeded with a, w1 alone gets b, then all get the next step.
    name: `a rollout over ${ROLLOUT_WORKERS} hosts (--canary 1 --batch 25%) against a push to one host; the master's peak RSS by GNU time`,
    async run(c) {
      c.r.rollout = await measureRollout({ seed: c.main.a.file, single: c.main.chain[0]!.file, rolled: c.main.chain[1]!.file, log });
    },
  },
];

/** RUNS delta pushes to `names` with a spare, alternating with RUNS without. */
async function alternate(c: Ctx, names: string[]) {
  const steady: Array<{ ms: number; rows: Row[] }> = [];
  const cold: typeof steady = [];
  for (let i = 0; i < RUNS; i++) {
    steady.push(await c.deltaPush(names, c.nextRelease().file, true));
    cold.push(await c.deltaPush(names, c.nextRelease().file, false));
  }
  return { steady, cold };
}

async function main() {
  log(`building releases (each one line of app code from the one before; and one with a new version) in ${work}`);
  // `main` is the default build (no --bytecode); `alt` the --bytecode one it was weighed against.
  const mainSet = await releaseSet(false, 3 + 4 * RUNS);
  const alt = await releaseSet(true, 1);

  await using fleet = await Fleet.create({ workers: 12 });
  await fleet.startAll();
  let next = 3;
  const c: Ctx = {
    fleet,
    hosts: fleet.workers.map((w) => w.name),
    main: mainSet,
    alt,
    r: {},
    nextRelease: () => mainSet.chain[next++]!,
    async push(names, file, extra = []) {
      const run = await fleet.update(["--host", names.join(","), "--artifact", file, ...extra]);
      const rows = run.report?.hosts ?? [];
      if (run.code !== 0) throw new Error(`push failed: ${rows.map((h) => h.detail).join("; ") || run.stderr}`);
      return rows;
    },
    async deltaPush(names, file, spare) {
      if (!spare) for (const n of names) rmSync(fleet.worker(n).paths.spare, { recursive: true, force: true });
      const { ms, value: rows } = await timed(() => c.push(names, file, ["--concurrency", String(names.length)]));
      for (const h of rows) {
        if (h.transfer?.mode !== "delta") throw new Error(`${h.host}: expected a delta, got ${JSON.stringify(h.transfer)}`);
        const kept = h.install?.bytes_in_place ?? -1;
        if (spare ? kept <= 0 : kept !== 0) throw new Error(`${h.host}: expected ${spare ? "a spare rewritten in place" : "no spare"}, the install reports ${kept} bytes in place`);
      }
      return { ms, rows };
    },
  };
  for (const m of measurements) {
    log(m.name);
    await m.run(c);
  }

  const r: Record<string, any> = {
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? "?", mem_gb: Math.round(totalmem() / 2 ** 30), bun: Bun.version, date: new Date().toISOString() },
    release_bytes: mainSet.a.size,
    ...c.r,
  };

  const rows: Array<[string, string, string]> = [
    ["delta push bytes / full release", `${(r.delta_ratio * 100).toFixed(2)}% (${(r.delta_bytes / 1e3).toFixed(0)} kB of ${(r.release_bytes / 1e6).toFixed(1)} MB)`, "≤ 2% (aim 1%)"],
    ["  with a new version too", `${(r.version_delta_ratio * 100).toFixed(2)}% (${(r.version_delta_bytes / 1e3).toFixed(0)} kB)`, "≤ 2%"],
    ["  --bytecode builds: one line / new version", `${(r.with_bytecode.delta_ratio * 100).toFixed(2)}% / ${(r.with_bytecode.version_delta_ratio * 100).toFixed(2)}%`, "—"],
    ["full push, 1 host", `${(r.full_push_ms / 1000).toFixed(2)} s`, "≤ 3 s"],
    ["delta push, 1 host (median of 3)", `${(r.delta_push_ms / 1000).toFixed(2)} s (runs ${r.runs_ms.delta_1.map((x: number) => (x / 1000).toFixed(2)).join(", ")} s)`, "≤ 1 s"],
    ["delta push, 12 hosts / 1 host (medians)", `${r.twelve_vs_one.toFixed(2)}× (${(r.delta_push_12_ms / 1000).toFixed(2)} s; runs ${r.runs_ms.delta_12.map((x: number) => (x / 1000).toFixed(1)).join(", ")} s)`, "≤ 2× (issue 17; ≤ 3× before)"],
    ["  without a spare (a worker's first pushes)", `1 host ${(r.without_spare.delta_push_ms / 1000).toFixed(2)} s, 12 hosts ${(r.without_spare.delta_push_12_ms / 1000).toFixed(2)} s: ${r.without_spare.twelve_vs_one.toFixed(2)}×`, "—"],
    ["rollback, 1 host (median of 3)", `${(r.rollback_ms / 1000).toFixed(2)} s`, "—"],
    ["updater RSS growth in a full upload", `${r.updater_rss_growth_mb} MB (idle ${r.updater_rss_idle_mb} MB, peak ${r.updater_rss_peak_mb} MB)`, "≤ 48 MB"],
    ["`decnet version` start-up (median)", `${r.version_startup_ms.default} ms; ${r.version_startup_ms.with_bytecode} ms with --bytecode`, "—"],
    ["agent start-up to /health (median)", `${r.agent_startup_ms} ms`, "—"],
    rolloutRow(r.rollout),
  ];
  const w = Math.max(...rows.map((x) => x[0].length));
  const v = Math.max(...rows.map((x) => x[1].length));
  process.stdout.write(`\ndecnet bench — ${r.machine.cpus} × ${r.machine.model}, ${r.machine.mem_gb} GiB, bun ${r.machine.bun}\n\n`);
  for (const [k, val, target] of rows) process.stdout.write(`${k.padEnd(w)}  ${val.padEnd(v)}  ${target}\n`);
  mkdirSync(OUT, { recursive: true });
  writeFileSync(join(OUT, "latest.json"), `${JSON.stringify(r, null, 2)}\n`);
  process.stdout.write(`\nwritten to bench/results/latest.json\n`);
}

try {
  await main();
} finally {
  rmSync(work, { recursive: true, force: true });
}
