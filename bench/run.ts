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
 * idle RSS, `decnet version` start-up and an agent's start-up to /health.
 * Prints a table, writes JSON.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { build } from "../build.ts";
import { Fleet, ROOT, runCli } from "../test/fleet/harness.ts";
import { localHealth } from "../src/lib/control-socket.ts";

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

const middle = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main() {
  log(`building releases (each one line of app code from the one before; and one with a new version) in ${work}`);
  // `main` is the default build (no --bytecode); `alt` the --bytecode one it was weighed against.
  const RUNS = 3;
  const main = await releaseSet(false, 3 + 4 * RUNS);
  const alt = await releaseSet(true, 1);

  await using fleet = await Fleet.create({ workers: 12 });
  await fleet.startAll();
  const hosts = fleet.workers.map((w) => w.name);
  const push = async (names: string[], file: string, extra: string[] = []) => {
    const r = await fleet.cli(["swarm", "update", "--host", names.join(","), "--artifact", file, "--json", ...extra]);
    const rep = JSON.parse(r.stdout) as { hosts: Array<{ agent: string; bytes_sent: number; detail: string }> };
    if (r.code !== 0) throw new Error(`push failed: ${rep.hosts.map((h) => h.detail).join("; ")}`);
    return rep.hosts;
  };
  /**
   * A timed delta push must have been one on every host, and must have taken
   * the path it is meant to measure: with a spare (a pruned release's file,
   * rewritten in place) or without (every byte written anew). The updater's
   * log line says which.
   */
  const deltaPush = async (names: string[], file: string, spare: boolean) => {
    if (!spare) for (const n of names) rmSync(fleet.worker(n).paths.spare, { recursive: true, force: true });
    const t0 = performance.now();
    const rows = await push(names, file, ["--concurrency", String(names.length)]);
    const ms = Math.round(performance.now() - t0);
    const full = rows.filter((h) => !/ delta \d+ kB against /.test(h.detail));
    if (full.length) throw new Error(`expected deltas, got: ${full.map((h) => h.detail).join("; ")}`);
    for (const n of names) {
      const line = readFileSync(fleet.worker(n).paths.updater.log, "utf8").trim().split("\n").findLast((l) => l.includes(" updated to "));
      const kept = Number(/(\d+) MiB already in place/.exec(line ?? "")?.[1] ?? -1);
      if (spare ? kept <= 0 : kept !== 0) throw new Error(`${n}: expected ${spare ? "a spare rewritten in place" : "no spare"}, the updater logged: ${line}`);
    }
    return { ms, value: rows };
  };
  const median = <T extends { ms: number }>(xs: T[]) => [...xs].sort((a, b) => a.ms - b.ms)[Math.floor(xs.length / 2)]!;

  log("full push to one host (w1), with the updater's RSS sampled");
  const w1 = fleet.worker("w1");
  const updaterPid = Number(readFileSync(w1.paths.updater.pid, "utf8"));
  const idleRss = rssKb(updaterPid);
  let peakRss = idleRss;
  const sampler = setInterval(() => { peakRss = Math.max(peakRss, rssKb(updaterPid)); }, 5);
  const full1 = await timed(() => push(["w1"], main.a.file, ["--full"]));
  clearInterval(sampler);

  // Steady state: a worker that has pruned a release keeps it as a spare and
  // rewrites it in place on the next update. Every host gets there first
  // (keep 3: its fourth release prunes the first; w1 already has `a`), then every timed push
  // alternates with and without a spare ("cold": a worker's first pushes).
  // Loopback timings on a shared 2-core machine vary run to run: each figure
  // is the median of RUNS, each run a release one line of code on from the
  // last, which the worker has never had.
  log("every host to steady state: four releases");
  for (const r of [main.a, ...main.chain.slice(0, 3)]) await push(hosts, r.file, ["--concurrency", "12"]);
  let next = 3;
  const runs = async (names: string[]) => {
    const steady: Array<Awaited<ReturnType<typeof deltaPush>>> = [];
    const cold: typeof steady = [];
    for (let i = 0; i < RUNS; i++) {
      steady.push(await deltaPush(names, main.chain[next++]!.file, true));
      cold.push(await deltaPush(names, main.chain[next++]!.file, false));
    }
    return { steady, cold };
  };
  log(`delta push to one host (w1), ${RUNS} times with a spare and ${RUNS} without`);
  const one = await runs(["w1"]);
  const firstDelta = one.steady[0]!;
  const delta1 = median(one.steady);
  const cold1 = median(one.cold);
  log(`rollback on one host (w1), ${RUNS} times (each swaps current and previous)`);
  const rollbacks: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const rb = await timed(() => fleet.cli(["swarm", "rollback", "--host", "w1"]));
    if (rb.value.code !== 0) throw new Error(rb.value.stderr);
    rollbacks.push(rb.ms);
  }
  const rollback = { ms: [...rollbacks].sort((a, b) => a - b)[Math.floor(RUNS / 2)]! };

  log(`delta push to all 12 at once, ${RUNS} times with a spare and ${RUNS} without`);
  const twelve = await runs(hosts);
  const delta12 = median(twelve.steady);
  const cold12 = median(twelve.cold);

  log("a new version, and the same changes with --bytecode builds");
  await push(["w3"], main.a.file, ["--full"]);
  const versionDelta = await push(["w3"], main.c.file);
  await push(["w2"], alt.a.file, ["--full"]);
  const altDelta = await push(["w2"], alt.b.file);
  await push(["w4"], alt.a.file, ["--full"]);
  const altVersionDelta = await push(["w4"], alt.c.file);

  log("decnet version start-up (30 runs each)");
  const startup = async (bin: string) => {
    const ms: number[] = [];
    for (let i = 0; i < 30; i++) {
      const t0 = performance.now();
      Bun.spawnSync([bin, "version"], { stdout: "ignore" });
      ms.push(performance.now() - t0);
    }
    return Math.round(middle(ms) * 10) / 10;
  };
  const startMain = await startup(main.a.bin);
  const startAlt = await startup(alt.a.bin);

  log("agent start-up, spawn to answering /health on agent.sock (15 runs, on w12 with its updater stopped)");
  const w12 = fleet.worker("w12");
  for (const pidFile of [w12.paths.updater.pid, w12.paths.agentPid]) process.kill(Number(readFileSync(pidFile, "utf8")), "SIGTERM");
  await Bun.sleep(500);
  const agentMs: number[] = [];
  for (let i = 0; i < 15; i++) {
    const t0 = performance.now();
    const p = Bun.spawn([join(w12.installDir, "current/decnet"), "agent", "--host", w12.address, "--agent-dir", w12.agentBundle, "--install-dir", w12.installDir], { stdout: "ignore", stderr: "ignore", env: { ...process.env, ...fleet.env } });
    for (;;) {
      try {
        await localHealth(w12.paths.agentSock, 200);
        break;
      } catch {
        await Bun.sleep(1);
      }
    }
    agentMs.push(performance.now() - t0);
    p.kill("SIGTERM");
    await p.exited;
  }
  const agentStart = Math.round(middle(agentMs) * 10) / 10;

  const r = {
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? "?", mem_gb: Math.round(totalmem() / 2 ** 30), bun: Bun.version, date: new Date().toISOString() },
    release_bytes: main.a.size,
    delta_bytes: firstDelta.value[0]!.bytes_sent,
    delta_ratio: firstDelta.value[0]!.bytes_sent / main.chain[3]!.size,
    version_delta_bytes: versionDelta[0]!.bytes_sent,
    version_delta_ratio: versionDelta[0]!.bytes_sent / main.c.size,
    with_bytecode: {
      release_bytes: alt.a.size,
      delta_bytes: altDelta[0]!.bytes_sent,
      delta_ratio: altDelta[0]!.bytes_sent / alt.b.size,
      version_delta_bytes: altVersionDelta[0]!.bytes_sent,
      version_delta_ratio: altVersionDelta[0]!.bytes_sent / alt.c.size,
    },
    full_push_ms: full1.ms,
    delta_push_ms: delta1.ms,
    delta_push_12_ms: delta12.ms,
    twelve_vs_one: delta12.ms / delta1.ms,
    without_spare: { delta_push_ms: cold1.ms, delta_push_12_ms: cold12.ms, twelve_vs_one: cold12.ms / cold1.ms },
    rollback_ms: rollback.ms,
    updater_rss_idle_mb: Math.round(idleRss / 1024),
    updater_rss_peak_mb: Math.round(peakRss / 1024),
    updater_rss_growth_mb: Math.round((peakRss - idleRss) / 1024),
    version_startup_ms: { default: startMain, with_bytecode: startAlt },
    agent_startup_ms: agentStart,
    runs_ms: {
      delta_1: one.steady.map((d) => d.ms),
      delta_12: twelve.steady.map((d) => d.ms),
      without_spare: { delta_1: one.cold.map((d) => d.ms), delta_12: twelve.cold.map((d) => d.ms) },
      rollback: rollbacks,
    },
    details: { delta1: delta1.value[0]!.detail, delta12: delta12.value.map((h) => h.bytes_sent) },
  };

  const rows: Array<[string, string, string]> = [
    ["delta push bytes / full release", `${(r.delta_ratio * 100).toFixed(2)}% (${(r.delta_bytes / 1e3).toFixed(0)} kB of ${(r.release_bytes / 1e6).toFixed(1)} MB)`, "≤ 2% (aim 1%)"],
    ["  with a new version too", `${(r.version_delta_ratio * 100).toFixed(2)}% (${(r.version_delta_bytes / 1e3).toFixed(0)} kB)`, "≤ 2%"],
    ["  --bytecode builds: one line / new version", `${(r.with_bytecode.delta_ratio * 100).toFixed(2)}% / ${(r.with_bytecode.version_delta_ratio * 100).toFixed(2)}%`, "—"],
    ["full push, 1 host", `${(r.full_push_ms / 1000).toFixed(2)} s`, "≤ 3 s"],
    ["delta push, 1 host (median of 3)", `${(r.delta_push_ms / 1000).toFixed(2)} s (runs ${r.runs_ms.delta_1.map((x) => (x / 1000).toFixed(2)).join(", ")} s)`, "≤ 1 s"],
    ["delta push, 12 hosts / 1 host (medians)", `${r.twelve_vs_one.toFixed(2)}× (${(r.delta_push_12_ms / 1000).toFixed(2)} s; runs ${r.runs_ms.delta_12.map((x) => (x / 1000).toFixed(1)).join(", ")} s)`, "≤ 3×"],
    ["  without a spare (a worker's first pushes)", `1 host ${(r.without_spare.delta_push_ms / 1000).toFixed(2)} s, 12 hosts ${(r.without_spare.delta_push_12_ms / 1000).toFixed(2)} s: ${r.without_spare.twelve_vs_one.toFixed(2)}×`, "—"],
    ["rollback, 1 host (median of 3)", `${(r.rollback_ms / 1000).toFixed(2)} s`, "—"],
    ["updater RSS growth in a full upload", `${r.updater_rss_growth_mb} MB (idle ${r.updater_rss_idle_mb} MB, peak ${r.updater_rss_peak_mb} MB)`, "≤ 48 MB"],
    ["`decnet version` start-up (median)", `${r.version_startup_ms.default} ms; ${r.version_startup_ms.with_bytecode} ms with --bytecode`, "—"],
    ["agent start-up to /health (median)", `${r.agent_startup_ms} ms`, "—"],
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
