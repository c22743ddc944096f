/**
 * The soak-and-chaos run shared by `bun run soak` (bench/soak.ts) and its CI
 * form (test/e2e/soak.test.ts): one worker of the compiled binary, a seeded
 * random mix of good full and delta pushes, rollbacks, unhealthy releases,
 * truncated, corrupt and dropped uploads, hostile archives, and kill -9 of
 * the updater at random offsets within the measured time of the operation
 * it interrupts (OSTree's destructive test is the model), with /health and
 * /releases called concurrently throughout. After every step the worker must
 * be on a good release with a healthy agent (after a kill, within a bound),
 * with no staging, journal, stray agent or open deleted file; over the run,
 * fds, RSS, threads and disk must stay within stated bounds.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { planDelta, deltaBody } from "../fixtures/delta1.ts";
import { readReleaseManifest } from "../../src/core/release.ts";
import { cmdline, isAlive } from "../../src/lib/procfs.ts";
import type { BlocksResponse } from "../../src/protocol/delta.ts";
import { hostileArchives } from "../fixtures/hostile-archives.ts";
import { Fleet, type Packed, release, until } from "./harness.ts";
import { diskUse, median, procSample, type ProcSample, rng } from "./soak-measure.ts";

export const STEP_KINDS = ["full", "delta", "rollback", "unhealthy", "truncated", "corrupt", "dropped", "dropped-delta", "hostile", "kill"] as const;
export type StepKind = (typeof STEP_KINDS)[number];
/** The good operations a kill interrupts. */
const KILLABLE = ["full", "delta", "rollback", "unhealthy"] as const;
type Killable = (typeof KILLABLE)[number];

export const DEFAULT_WEIGHTS: Record<StepKind, number> = {
  full: 5,
  delta: 12,
  rollback: 8,
  unhealthy: 3,
  truncated: 17,
  corrupt: 8,
  dropped: 7,
  "dropped-delta": 4,
  hostile: 24,
  kill: 12,
};

export interface SoakOptions {
  seed: number;
  /** At most this many steps… */
  ops: number;
  /** …and at most this long. */
  minutes: number;
  weights?: Partial<Record<StepKind, number>>;
  /** Progress, one line at a time. */
  log?: (line: string) => void;
}

/** The bounds a run is held to, stated once (the report prints them). */
export const BOUNDS = {
  /** After a step (not a kill): healthy and idle again within. */
  settleMs: 20_000,
  /** After a kill -9: the restarted updater has the worker on a good release, agent healthy, within. */
  recoverMs: 30_000,
  /** Updater fds above the run's first sample. */
  fdGrowth: 8,
  /** Updater threads above the run's first sample. */
  threadGrowth: 8,
  /** Updater RSS, any sample. */
  rssMb: 320,
  /** Updater RSS drift over its longest life: median of the last quarter minus the first quarter. */
  rssDriftMb: 48,
  /**
   * Install dir without logs, in releases: current, previous, the newest 3
   * good (DECNET_KEEP_RELEASES) and the spare; the failed one kept is the
   * small fixture; block indexes and history are small.
   */
  installDirReleases: 6,
  /** Log growth per step (agent.spawn.log, updater.log). */
  logBytesPerStep: 4096,
  /** /health and /releases while the updater runs: every answer 200, within. */
  callMs: 5_000,
} as const;

interface Sample extends ProcSample {
  step: number;
  pid: number;
  installBytes: number;
  logBytes: number;
  agentDeletedFds: number;
}

export interface SoakReport {
  seed: number;
  weights: Record<StepKind, number>;
  steps: number;
  seconds: number;
  /** Building and packing the releases, starting the worker. */
  setupSeconds: number;
  /** Wall time per kind of step, settling included. */
  msByKind: Record<string, number>;
  counts: Record<string, number>;
  outcomes: Record<string, number>;
  kills: { total: number; duringRecovery: number; recoveryMsMax: number; recoveryMsMedian: number };
  calls: { health: number; releases: number; failed: number; maxMs: number };
  figures: {
    fds: { first: number; max: number };
    threads: { first: number; max: number };
    rssMb: { first: number; max: number; longestLife: { samples: number; firstQuarter: number; lastQuarter: number } };
    installDirMb: { max: number; bound: number };
    logBytes: { first: number; last: number; perStep: number };
    deletedFds: { max: number; maxBytes: number };
  };
  bounds: typeof BOUNDS;
  violations: string[];
}

export async function runSoak(o: SoakOptions): Promise<SoakReport> {
  const r = rng(o.seed);
  const weights = { ...DEFAULT_WEIGHTS, ...o.weights };
  const log = o.log ?? (() => {});
  const started = performance.now();
  const deadline = Date.now() + o.minutes * 60_000;
  const violations: string[] = [];
  const counts: Record<string, number> = {};
  const outcomes: Record<string, number> = {};
  const bump = (m: Record<string, number>, k: string) => (m[k] = (m[k] ?? 0) + 1);
  const durations: Record<string, number[]> = { full: [3000], delta: [800], rollback: [600], unhealthy: [1000], startup: [500] };
  const took = (k: string, ms: number) => durations[k]!.push(ms) > 40 && durations[k]!.shift();
  const recoveries: number[] = [];
  let killsDuringRecovery = 0;
  const samples: Sample[] = [];

  await using fleet = await Fleet.create({ workers: 1 });
  const w = fleet.worker("w1");
  const good: Packed[] = await Promise.all((["v1", "v2", "v3", "v4"] as const).map((n) => release(n)));
  const unhealthy = await release("agent-exits");
  const goodIds = new Set(good.map((p) => p.id));
  const bytesOf = new Map<string, Uint8Array>();
  const bytes = async (p: Packed) => bytesOf.get(p.id) ?? bytesOf.set(p.id, await Bun.file(p.file).bytes()).get(p.id)!;
  const hostile = Object.entries(hostileArchives).map(([name, c]) => ({ name, ...c, bytes: c.body() }));
  const deltas = new Map<string, Uint8Array>();
  const blocksOf = new Map<string, BlocksResponse>();

  await fleet.startUpdater(w);
  let up = true; // the updater runs (false between a kill and its restart)
  let epoch = 0; // bumped by every kill: a call that spans one proves nothing
  const push = (body: Uint8Array, query = "", signal?: AbortSignal) =>
    fleet.request(w, "updater", `/update${query}`, { method: "POST", body, signal }).then(async (res) => ({ status: res.status, body: (await res.json().catch(() => null)) as any }));
  const first = await push(await bytes(good[0]!));
  if (first.status !== 200) throw new Error(`the first push failed: ${JSON.stringify(first.body)}`);

  // /health and /releases, called throughout at random moments.
  const calls = { health: 0, releases: 0, failed: 0, maxMs: 0 };
  let polling = true;
  const poller = (async () => {
    const pr = rng(o.seed ^ 0x5eed);
    while (polling) {
      const which = pr.next() < 0.5 ? "health" : "releases";
      const e0 = epoch;
      const t0 = performance.now();
      const ok = await fleet.request(w, "updater", `/${which}`, { signal: AbortSignal.timeout(BOUNDS.callMs) }).then((res) => res.status === 200 && res.json().then(() => true), () => false);
      const ms = performance.now() - t0;
      if (up && e0 === epoch) {
        calls[which]++;
        if (ok) calls.maxMs = Math.max(calls.maxMs, Math.round(ms));
        else {
          calls.failed++;
          violations.push(`a concurrent /${which} failed while the updater ran (${Math.round(ms)} ms)`);
        }
      }
      await Bun.sleep(pr.int(10, 150));
    }
  })();

  /** The worker's state once idle: good release, healthy agent, nothing left over. */
  const settle = async (step: number, what: string, boundMs: number) => {
    const t0 = performance.now();
    let last = "";
    const h = await until(
      async () => {
        const x = await fleet.health(w);
        last = JSON.stringify({ busy: x.busy, agent: x.agent });
        return x.busy === null && x.agent.healthy ? x : null;
      },
      `${what}: the worker to be idle with a healthy agent (last ${last})`,
      boundMs,
      25,
    ).catch((e: Error) => {
      violations.push(`step ${step} (${what}): ${e.message}`);
      return null;
    });
    if (!h) return null;
    const ms = performance.now() - t0;
    const rel = await fleet.releases(w);
    const cur = rel.releases.find((x) => x.current);
    const problems: string[] = [];
    if (!cur || cur.status !== "good" || !goodIds.has(cur.id)) problems.push(`current is ${cur ? `${cur.id.slice(0, 12)} (${cur.status})` : "none"}`);
    if (h.leaks?.deleted_fds) problems.push(`/health reports ${h.leaks.deleted_fds} deleted fds`);
    for (const dir of [w.paths.releases, w.paths.updater.releases]) {
      const staging = existsSync(dir) ? readdirSync(dir).filter((n) => n.startsWith(".staging-")) : [];
      if (staging.length) problems.push(`staging left: ${staging.join(", ")}`);
    }
    if (existsSync(w.paths.stateJson)) problems.push("a journal (state.json) is left");
    const upid = fleet.pid(w, "updater");
    // Agents of this worker: exactly the one /health names. (An install check orphaned by a kill is not an agent.)
    const agents = await until(() => {
      const a = fleet.processes().filter((p) => p !== upid && cmdline(p).includes("agent"));
      return a.length === 1 ? a : null;
    }, "one agent", 3_000).catch(() => fleet.processes().filter((p) => p !== upid && cmdline(p).includes("agent")));
    if (agents.length !== 1 || agents[0] !== h.agent.pid) problems.push(`agents ${JSON.stringify(agents)}, /health names ${h.agent.pid}`);
    const s = procSample(upid, w.installDir);
    const agentDeleted = procSample(h.agent.pid!, w.installDir)?.deletedFds ?? 0;
    if (s) {
      const disk = diskUse(w.installDir);
      samples.push({ ...s, step, pid: upid, installBytes: disk.bytes, logBytes: disk.logBytes, agentDeletedFds: agentDeleted });
      if (s.deletedFds || agentDeleted) problems.push(`deleted files held open: updater ${s.deletedFds} (${s.deletedBytes} B), agent ${agentDeleted}`);
    }
    for (const p of problems) violations.push(`step ${step} (${what}): ${p}`);
    return { ms, current: cur?.id ?? null };
  };

  const deltaFor = async (base: string, target: Packed) => {
    const key = `${base}>${target.id}`;
    let body = deltas.get(key);
    if (!body) {
      let blocks = blocksOf.get(base);
      if (!blocks) {
        blocks = (await (await fleet.request(w, "updater", `/blocks?release=${base}`)).json()) as BlocksResponse;
        blocksOf.set(base, blocks);
      }
      const plan = await planDelta(target.file, await readReleaseManifest(target.file), blocks);
      if (!plan) throw new Error(`no delta from ${base.slice(0, 12)} to ${target.id.slice(0, 12)}`);
      body = await deltaBody(plan);
      deltas.set(key, body);
    }
    return body;
  };

  /** Sends `data` and drops the connection after `cut` bytes. */
  const dropAfter = async (data: Uint8Array, cut: number, query = "") => {
    const ctl = new AbortController();
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent >= cut) return void ctl.abort();
        const n = Math.min(cut, sent + 256 * 1024);
        c.enqueue(data.subarray(sent, n));
        sent = n;
      },
    });
    await fleet.request(w, "updater", `/update${query}`, { method: "POST", body, duplex: "half", signal: ctl.signal } as RequestInit).catch(() => null);
  };

  const current = async () => (await fleet.releases(w)).current!;
  const otherGood = async () => {
    const cur = await current();
    return r.pick(good.filter((p) => p.id !== cur));
  };

  /** One good operation: its answer, checked; `signal` lets a kill cut it short. */
  const goodOp = async (kind: Killable, signal?: AbortSignal): Promise<string> => {
    const t0 = performance.now();
    let res: { status: number; body: any };
    if (kind === "full") res = await push(await bytes(r.pick(good)), "", signal);
    else if (kind === "delta") {
      const cur = await current();
      const target = await otherGood();
      res = await push(await deltaFor(cur, target), `?delta=${cur}`, signal);
    } else if (kind === "rollback") {
      const x = await fleet.request(w, "updater", "/rollback", { method: "POST", signal });
      res = { status: x.status, body: await x.json().catch(() => null) };
    } else res = await push(await bytes(unhealthy), "", signal);
    const outcome = `${kind} ${res.status} ${res.body?.status ?? res.body?.error?.code ?? "?"}`;
    const expected: Record<Killable, string[]> = {
      full: ["full 200 updated", "full 200 unchanged"],
      delta: ["delta 200 updated"],
      rollback: ["rollback 200 rolled-back", "rollback 404 no_previous"],
      unhealthy: ["unhealthy 409 rolled_back"],
    };
    if (!signal && !expected[kind].includes(outcome)) violations.push(`${kind}: unexpected answer ${outcome}: ${JSON.stringify(res.body?.error ?? res.body).slice(0, 300)}`);
    if (res.status < 300) took(kind, performance.now() - t0);
    return outcome;
  };

  const kill = (pid: number) => {
    epoch++;
    up = false;
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  };
  const restart = async () => {
    await until(() => !isAlive(fleet.pid(w, "updater")), "the killed updater to be gone", 5_000, 5);
    await fleet.startUpdater(w);
    up = true;
  };

  const setupSeconds = Math.round((performance.now() - started) / 1000);
  const msByKind: Record<string, number> = {};
  let step = 0;
  let stepStart = performance.now();
  let lastKind = "";
  const endStep = () => {
    if (lastKind) msByKind[lastKind] = Math.round((msByKind[lastKind] ?? 0) + performance.now() - stepStart);
    stepStart = performance.now();
  };
  for (; step < o.ops && Date.now() < deadline; step++) {
    endStep();
    const kind = r.weighted(weights);
    lastKind = kind;
    bump(counts, kind);
    let outcome: string = kind;
    let bound: number = BOUNDS.settleMs;
    if (kind === "full" || kind === "delta" || kind === "rollback" || kind === "unhealthy") outcome = await goodOp(kind);
    else if (kind === "truncated" || kind === "corrupt") {
      const data = await bytes(r.pick(good));
      let body: Uint8Array;
      if (kind === "truncated") body = data.subarray(0, r.logUniform(300, 20_000_000));
      else {
        const at = r.logUniform(1024, 20_000_000);
        body = data.slice(0, at + 4 * 1024 * 1024);
        body.fill(r.int(0, 255), at, at + 64);
      }
      const res = await push(body);
      outcome = `${kind} ${res.status} ${res.body?.error?.code ?? res.body?.status}`;
      if (res.status !== 400 || res.body?.error?.code !== "bad_archive") violations.push(`step ${step}: ${outcome}: ${JSON.stringify(res.body).slice(0, 300)}`);
    } else if (kind === "dropped") {
      await dropAfter(await bytes(r.pick(good)), r.logUniform(64 * 1024, 20_000_000));
    } else if (kind === "dropped-delta") {
      const cur = await current();
      const body = await deltaFor(cur, await otherGood());
      await dropAfter(body, r.int(1, body.byteLength - 1), `?delta=${cur}`);
    } else if (kind === "hostile") {
      const c = r.pick(hostile);
      const res = await push(c.bytes);
      outcome = `hostile ${res.status}`;
      if (res.status !== c.status || !c.message.test(res.body?.error?.message ?? "")) violations.push(`step ${step}: hostile "${c.name}" answered ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
    } else {
      // kill -9 at a random offset within the measured time of the operation it interrupts.
      const victim = r.pick(KILLABLE);
      const at = Math.round(r.next() * median(durations[victim]!));
      const ctl = new AbortController();
      const op = goodOp(victim, ctl.signal).catch(() => "cut");
      await Bun.sleep(at);
      kill(fleet.pid(w, "updater"));
      ctl.abort();
      await op;
      const t0 = performance.now();
      await restart();
      // One kill in four hits the restarted updater again while it recovers.
      if (r.next() < 0.25) {
        await Bun.sleep(Math.round(r.next() * median(durations.startup!)));
        kill(fleet.pid(w, "updater"));
        await restart();
        killsDuringRecovery++;
      }
      outcome = `kill during ${victim} at ${at} ms`;
      bound = BOUNDS.recoverMs;
      const s = await settle(step, outcome, bound);
      if (s) recoveries.push(Math.round(performance.now() - t0));
      bump(outcomes, `kill during ${victim}`);
      if (violations.length) break;
      continue;
    }
    bump(outcomes, outcome);
    const t0 = performance.now();
    const s = await settle(step, outcome, bound);
    if (s && kind === "full") took("startup", performance.now() - t0);
    if (violations.length) break;
    if (step % 50 === 49) log(`step ${step + 1}: ${JSON.stringify(counts)}`);
  }
  endStep();
  polling = false;
  await poller;

  // The run's figures and the bounds they are held to.
  const upd = samples;
  const firstS = upd[0]!;
  const lives = new Map<number, Sample[]>();
  for (const s of upd) lives.set(s.pid, [...(lives.get(s.pid) ?? []), s]);
  const longest = [...lives.values()].sort((a, b) => b.length - a.length)[0] ?? [];
  const q = Math.max(1, Math.floor(longest.length / 4));
  const rssEarly = median(longest.slice(0, q).map((s) => s.rssMb));
  const rssLate = median(longest.slice(-q).map((s) => s.rssMb));
  const releaseBytes = Math.max(...good.map((p) => statSync(p.file).size)) * 2.2; // unpacked ≈ 2.1× the tarball
  const installBound = Math.round((BOUNDS.installDirReleases * releaseBytes) / 1e6);
  const maxOf = (f: (s: Sample) => number) => Math.max(...upd.map(f));
  const figures: SoakReport["figures"] = {
    fds: { first: firstS.fds, max: maxOf((s) => s.fds) },
    threads: { first: firstS.threads, max: maxOf((s) => s.threads) },
    rssMb: { first: firstS.rssMb, max: maxOf((s) => s.rssMb), longestLife: { samples: longest.length, firstQuarter: rssEarly, lastQuarter: rssLate } },
    installDirMb: { max: Math.round(maxOf((s) => s.installBytes) / 1e6), bound: installBound },
    logBytes: { first: firstS.logBytes, last: upd.at(-1)!.logBytes, perStep: Math.round((upd.at(-1)!.logBytes - firstS.logBytes) / Math.max(1, step)) },
    deletedFds: { max: maxOf((s) => s.deletedFds + s.agentDeletedFds), maxBytes: maxOf((s) => s.deletedBytes) },
  };
  if (figures.fds.max > figures.fds.first + BOUNDS.fdGrowth) violations.push(`updater fds grew from ${figures.fds.first} to ${figures.fds.max}`);
  if (figures.threads.max > figures.threads.first + BOUNDS.threadGrowth) violations.push(`updater threads grew from ${figures.threads.first} to ${figures.threads.max}`);
  if (figures.rssMb.max > BOUNDS.rssMb) violations.push(`updater RSS reached ${figures.rssMb.max} MB`);
  if (longest.length >= 40 && rssLate - rssEarly > BOUNDS.rssDriftMb) violations.push(`updater RSS drifted ${rssEarly} → ${rssLate} MB over ${longest.length} steps`);
  if (figures.installDirMb.max > installBound) violations.push(`install dir reached ${figures.installDirMb.max} MB`);
  if (figures.logBytes.perStep > BOUNDS.logBytesPerStep) violations.push(`logs grew ${figures.logBytes.perStep} B per step`);
  return {
    seed: o.seed,
    weights,
    steps: step,
    seconds: Math.round((performance.now() - started) / 1000),
    setupSeconds,
    msByKind,
    counts,
    outcomes,
    kills: { total: counts.kill ?? 0, duringRecovery: killsDuringRecovery, recoveryMsMax: Math.max(0, ...recoveries), recoveryMsMedian: median(recoveries) },
    calls,
    figures,
    bounds: BOUNDS,
    violations,
  };
}

/** The report as the lines a person reads (and the command that replays the run). */
export function formatReport(rep: SoakReport, command = "bun run soak"): string {
  const f = rep.figures;
  const changed = Object.entries(rep.weights).filter(([k, n]) => DEFAULT_WEIGHTS[k as StepKind] !== n).map(([k, n]) => ` --weight ${k}=${n}`).join("");
  return [
    `soak seed ${rep.seed}: ${rep.steps} steps in ${rep.seconds} s — replay with \`${command} --seed ${rep.seed} --ops ${rep.steps}${changed}\``,
    `  steps: ${Object.entries(rep.counts).map(([k, n]) => `${k} ${n} (${Math.round((rep.msByKind[k] ?? 0) / n)} ms each)`).join(", ")}; setup ${rep.setupSeconds} s`,
    `  answers: ${Object.entries(rep.outcomes).sort().map(([k, n]) => `${k} ×${n}`).join(", ")}`,
    `  kill -9: ${rep.kills.total} (${rep.kills.duringRecovery} again during recovery); recovered to a healthy agent in ≤ ${rep.kills.recoveryMsMax} ms (median ${rep.kills.recoveryMsMedian}; bound ${rep.bounds.recoverMs})`,
    `  concurrent calls: /health ${rep.calls.health}, /releases ${rep.calls.releases}, failed ${rep.calls.failed}, slowest ${rep.calls.maxMs} ms (bound ${rep.bounds.callMs})`,
    `  updater fds ${f.fds.first} → max ${f.fds.max} (bound +${rep.bounds.fdGrowth}); threads ${f.threads.first} → max ${f.threads.max} (bound +${rep.bounds.threadGrowth})`,
    `  updater RSS ${f.rssMb.first} MB → max ${f.rssMb.max} MB (bound ${rep.bounds.rssMb}); longest life ${f.rssMb.longestLife.samples} steps: ${f.rssMb.longestLife.firstQuarter} → ${f.rssMb.longestLife.lastQuarter} MB (drift bound ${rep.bounds.rssDriftMb})`,
    `  install dir ≤ ${f.installDirMb.max} MB without logs (bound ${f.installDirMb.bound}); logs ${f.logBytes.first} → ${f.logBytes.last} B (${f.logBytes.perStep} B/step, bound ${rep.bounds.logBytesPerStep}); deleted files held open: max ${f.deletedFds.max} (${f.deletedFds.maxBytes} B)`,
    rep.violations.length ? `  VIOLATIONS (${rep.violations.length}):\n${rep.violations.map((v) => `    - ${v}`).join("\n")}` : "  no violations",
  ].join("\n");
}
