/**
 * Rollouts (DESIGN §12) with the compiled binary and 8 real workers on
 * loopback: a halt touches one batch and no other host receives anything,
 * canaries, unreachable is not a release failure, --halt-rollback, a
 * percentage budget with its rounding, --events replayed into the final
 * table, Ctrl-C (once, twice) and kill -9 of the master with resume, abort,
 * --include-self in batches, and one line for each bad input.
 */
import { beforeAll, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { join } from "node:path";
import { type CliResult, hostDependentRelease, type Packed, release, until, type UpdateRun, type Worker } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";
import { sqliteMigrations } from "../../src/core/registry-schema.ts";

const fleet = useFleet({ workers: 8, env: { DECNET_PROBE_TIMEOUT_MS: "3000", NO_COLOR: "1" }, start: "all" });
const names = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => `w${a + i}`);
const W = (n: string) => fleet.worker(n);
let v1: Packed, v2: Packed, fails: Packed, failsOnW3: Packed;
let first: UpdateRun;

beforeAll(async () => {
  [v1, v2, fails] = await Promise.all([release("v1"), release("v2"), release("version-fails")]);
  failsOnW3 = await hostDependentRelease(W("w3").address, join(fleet.root, "fails-on-w3.tar.gz"));
  first = await fleet.update(["--all", "--artifact", v1.file]);
  if (first.code !== 0) throw new Error(`first push: ${first.stderr}`);
});

type Json = Record<string, any>;
const json = (r: CliResult): Json => JSON.parse(r.stdout);
const states = (hosts: Array<{ host: string; state: string }>) => Object.fromEntries(hosts.map((h) => [h.host, h.state]));
const show = async (id: string) => json(await fleet.cli(["swarm", "rollout", "show", id, "--json"]));
const current = (w: Worker) => readlinkSync(w.paths.current).replace("releases/", "");
/** One line on stderr, no stack frames. */
const oneLine = (r: CliResult) => r.stderr.trim().split("\n").length === 1 && !/\n\s+at |\.ts:\d+/.test(r.stderr);
/** Every worker's updater is free (a killed master may leave one finishing an install). */
const allIdle = () => until(async () => (await Promise.all(fleet.workers.map((w) => fleet.health(w)))).every((h) => h.busy === null), "every updater to be idle", 30_000, 100);

/** A master run whose --events stdout is read as it happens. */
class Master {
  readonly events: Json[] = [];
  stderr = "";
  private readonly proc;
  readonly done: Promise<number>;
  constructor(args: string[]) {
    this.proc = Bun.spawn([fleet.bin, ...args], { env: { ...process.env, ...fleet.env }, cwd: fleet.root, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
    const read = async (s: ReadableStream<Uint8Array>, onText: (t: string) => void) => {
      const dec = new TextDecoder();
      for await (const c of s) onText(dec.decode(c, { stream: true }));
    };
    let buf = "";
    const out = read(this.proc.stdout, (t) => {
      buf += t;
      const lines = buf.split("\n");
      buf = lines.pop()!;
      for (const l of lines) this.events.push(JSON.parse(l));
    });
    const errs = read(this.proc.stderr, (t) => (this.stderr += t));
    this.done = Promise.all([out, errs, this.proc.exited]).then(([, , code]) => code);
  }
  until(pred: (e: Json) => boolean, what: string, n = 1): Promise<Json> {
    return until(() => this.events.filter(pred)[n - 1], what, 60_000, 5);
  }
  kill(sig: "SIGINT" | "SIGTERM" | "SIGKILL") {
    this.proc.kill(sig);
  }
}

test("a plain update is a rollout with an id: one batch, every host tried, recorded, and `rollout show` says the same", async () => {
  const r = first.report as unknown as Json;
  const shown = await show(r.rollout.id);
  expect({
    rollout: { ...r.rollout, id: /^[0-9a-f]{8}$/.test(r.rollout.id) },
    shown: [shown.state, shown.release.id, shown.hosts.map((h: Json) => [h.host, h.state, h.result.agent]), shown.release_file],
    cached: existsSync(join(fleet.env.DECNET_HOME!, "cache", "rollouts", r.rollout.id)),
  }).toEqual({
    rollout: {
      id: true, state: "done", batches: [names(1, 8)], canaries: false, hosts: names(1, 8).map((host) => ({ host, batch: 0, state: "updated" })),
      tally: { updated: 8, failed: 0, unreachable: 0, reverted: 0, pending: 0 }, limits: { failures: null, unreachable: null }, halt_reason: null, resume: null,
    },
    shown: ["done", v1.id, names(1, 8).map((h) => [h, "updated", "updated"]), null],
    cached: false,
  });
});

test("bad input is a usage error (exit 2) with one line each, before anything is sent", async () => {
  const upd = (extra: string[]) => fleet.cli(["swarm", "update", "--all", "--artifact", v2.file, ...extra]);
  const runs = {
    batch0: await upd(["--batch", "0"]),
    negative: await upd(["--max-failures", "-1"]),
    batch150: await upd(["--batch", "150%"]),
    parsecs: await upd(["--pause", "5parsecs"]),
    ghost: await upd(["--canary", "ghost"]),
    unknown: await fleet.cli(["swarm", "rollout", "resume", "0badbeef"]),
    finished: await fleet.cli(["swarm", "rollout", "resume", (first.report as unknown as Json).rollout.id]),
    eventsAndJson: await upd(["--events", "--json"]),
  };
  const id = (first.report as unknown as Json).rollout.id;
  expect(Object.fromEntries(Object.entries(runs).map(([k, r]) => [k, [r.code, oneLine(r), r.stderr.trim()]]))).toEqual({
    batch0: [2, true, "decnet: --batch 0: a batch needs at least one host"],
    negative: [2, true, 'decnet: --max-failures takes a whole number of hosts or a percentage (N or P%), not "-1"'],
    batch150: [2, true, "decnet: --batch 150%: a percentage is at most 100%"],
    parsecs: [2, true, 'decnet: --pause takes a duration such as 30s, 5m or 1h (units ms, s, m, h), not "5parsecs"'],
    ghost: [2, true, "decnet: unknown --canary host: ghost — see `decnet swarm list`"],
    unknown: [2, true, "decnet: no rollout 0badbeef — see `decnet swarm rollout list`"],
    finished: [2, true, `decnet: rollout ${id} is done; there is nothing to resume`],
    eventsAndJson: [2, true, "decnet: give --json or --events, not both"],
  });
  // Nothing moved: every worker still runs v1.
  expect(fleet.workers.map(current)).toEqual(fleet.workers.map(() => v1.id));
});

test("--batch 2 --max-failures 1, a release that fails everywhere: one batch touched, no other host receives a byte, halted, exit 1, resume printed; abort, then resume is refused", async () => {
  const untouched = names(3, 6).map(W);
  const before = untouched.map((w) => ({ dir: readdirSync(w.paths.releases).sort(), log: statSync(w.paths.updater.log).size }));
  const touchedLog = names(1, 2).map((n) => statSync(W(n).paths.updater.log).size);
  const r = await fleet.update(["--host", names(1, 6).join(","), "--artifact", fails.file, "--batch", "2", "--max-failures", "1"]);
  const id = r.report && (r.report as unknown as Json).rollout.id;
  const logSince = (w: Worker, from: number) => readFileSync(w.paths.updater.log, "utf8").slice(from);
  expect({
    code: r.code,
    rollout: [(r.report as unknown as Json).rollout.state, (r.report as unknown as Json).rollout.batches, states((r.report as unknown as Json).rollout.hosts)],
    rows: r.report!.hosts.map((h) => [h.host, h.agent, h.error_code]),
    resume: r.stderr.includes(`decnet swarm rollout resume ${id}`),
    // The two it touched did receive it (their updaters refused it); the others got nothing at all.
    touched: names(1, 2).map((n, i) => logSince(W(n), touchedLog[i]!).includes("install_failed")),
    untouched: untouched.map((w, i) => ({ dir: readdirSync(w.paths.releases).sort(), log: logSince(w, before[i]!.log) })),
    current: names(1, 6).map((n) => current(W(n))),
  }).toEqual({
    code: 1,
    rollout: ["halted", [["w1", "w2"], ["w3", "w4"], ["w5", "w6"]], { w1: "failed", w2: "failed", w3: "pending", w4: "pending", w5: "pending", w6: "pending" }],
    rows: [["w1", "error", "install_failed"], ["w2", "error", "install_failed"]],
    resume: true,
    touched: [true, true],
    untouched: before.map((b) => ({ dir: b.dir, log: "" })),
    current: names(1, 6).map(() => v1.id),
  });
  const cached = join(fleet.env.DECNET_HOME!, "cache", "rollouts", id);
  const kept = existsSync(cached);
  const abort = await fleet.cli(["swarm", "rollout", "abort", id]);
  const resume = await fleet.cli(["swarm", "rollout", "resume", id]);
  expect({ kept, abort: [abort.code, abort.stdout.trim()], gone: existsSync(cached), resume: [resume.code, oneLine(resume), resume.stderr.trim()], state: (await show(id)).state }).toEqual({
    kept: true,
    abort: [0, `rollout ${id} aborted: 0 updated, 2 failed, 0 skipped (unreachable), 4 pending`],
    gone: false,
    resume: [2, true, `decnet: rollout ${id} was aborted; it cannot be resumed — start a new one with \`decnet swarm update\``],
    state: "aborted",
  });
});

test("--canary 1 with a failing release: one host touched, halted", async () => {
  const r = await fleet.update(["--all", "--artifact", fails.file, "--canary", "1"]);
  const ro = (r.report as unknown as Json).rollout;
  expect({ code: r.code, state: ro.state, batches: ro.batches, rows: r.report!.hosts.map((h) => h.host), pending: ro.tally.pending }).toEqual({
    code: 1, state: "halted", batches: [["w1"], names(2, 8)], rows: ["w1"], pending: 7,
  });
});

test("--max-failures 0 with one host down: the others updated, the down host skipped (unreachable), not halted", async () => {
  const w6 = W("w6");
  process.kill(fleet.pid(w6, "updater"), "SIGKILL");
  const r = await fleet.cli(["swarm", "update", "--host", names(1, 6).join(","), "--artifact", v2.file, "--batch", "3", "--max-failures", "0"]);
  await fleet.startUpdater(w6);
  const row = r.stdout.split("\n").find((l) => l.startsWith("w6 "))!.split(/\s{2,}/);
  const id = /rollout ([0-9a-f]{8}) done/.exec(r.stderr)?.[1] ?? "?";
  expect({
    code: r.code,
    w6: [row[3], row[5]!.startsWith(`unreachable: connection refused by ${w6.address}:8766`)],
    summary: r.stderr.trim().split("\n").at(-1),
    states: states((await show(id)).hosts),
    current: names(1, 6).map((n) => current(W(n))),
  }).toEqual({
    code: 1,
    w6: ["skipped", true],
    summary: `decnet: rollout ${id} done: 5 updated, 0 failed, 1 skipped (unreachable), 0 pending — see the detail column`,
    states: { w1: "updated", w2: "updated", w3: "updated", w4: "updated", w5: "updated", w6: "unreachable" },
    current: [...names(1, 5).map(() => v2.id), v1.id],
  });
});

test("--halt-rollback: the hosts this rollout updated go back to their previous release, and it says which", async () => {
  const r = await fleet.update(["--host", names(1, 4).join(","), "--artifact", failsOnW3.file, "--batch", "2", "--max-failures", "0", "--halt-rollback"]);
  const ro = (r.report as unknown as Json).rollout;
  const agents = await Promise.all(names(1, 4).map(async (n) => ((await (await fleet.request(W(n), "agent", "/health")).json()) as Json).release));
  expect({
    code: r.code,
    state: ro.state,
    hosts: states(ro.hosts),
    said: r.stderr.includes("decnet: --halt-rollback rolled back w1, w2, w4 to their previous release"),
    agents,
  }).toEqual({
    code: 1,
    state: "halted",
    hosts: { w1: "reverted", w2: "reverted", w3: "failed", w4: "reverted" },
    said: true,
    agents: names(1, 4).map(() => v2.id),
  });
});

test("--batch 25% --max-failures 10% over 8 hosts: batches of 2, 0 failures allowed (10% of 8 rounds down); --events replay into the final table; resume counts afresh", async () => {
  const m = new Master(["swarm", "update", "--all", "--artifact", failsOnW3.file, "--batch", "25%", "--max-failures", "10%", "--events"]);
  const code = await m.done;
  const id = m.events[0]!.rollout;
  // Replay: every host from the start event, then each event's word on it.
  const table: Record<string, Json> = {};
  for (const e of m.events) {
    if (e.event === "rollout.started") for (const h of e.hosts) table[h.host] = { state: h.state, result: null };
    if (e.event === "host.started") table[e.host]!.state = "running";
    if (e.event === "host.finished") table[e.host] = { state: e.state, result: e.result };
    if (e.event === "host.reverted") table[e.host]!.state = e.state;
  }
  const shown = await show(id);
  expect({
    code,
    sameIds: m.events.every((e) => e.rollout === id && typeof e.at === "string"),
    started: [m.events[0]!.batches, m.events[0]!.settings.limits],
    checks: m.events.filter((e) => e.event === "batch.checked").map((e) => [e.batch, e.halt]),
    last: [m.events.at(-1)!.event, m.events.at(-1)!.state, m.events.at(-1)!.resume],
    replayed: table,
  }).toEqual({
    code: 1,
    sameIds: true,
    started: [[["w1", "w2"], ["w3", "w4"], ["w5", "w6"], ["w7", "w8"]], { failures: 0, unreachable: null }],
    checks: [[0, null], [1, "1 release failure, more than the 0 allowed"]],
    last: ["rollout.finished", "halted", `decnet swarm rollout resume ${id}`],
    replayed: Object.fromEntries(shown.hosts.map((h: Json) => [h.host, { state: h.state, result: h.result }])),
  });
  expect(states(shown.hosts)).toEqual({ w1: "updated", w2: "updated", w3: "failed", w4: "updated", w5: "pending", w6: "pending", w7: "pending", w8: "pending" });
  // The operator has looked at w3: a resumed halt counts afresh and finishes the rest.
  const resumed = await fleet.cli(["swarm", "rollout", "resume", id, "--json"]);
  const ro = json(resumed).rollout;
  expect({ code: resumed.code, state: ro.state, hosts: states(ro.hosts) }).toEqual({
    code: 1, state: "done", hosts: { w1: "updated", w2: "updated", w3: "failed", w4: "updated", w5: "updated", w6: "updated", w7: "updated", w8: "updated" },
  });
});

test("Ctrl-C: no new host starts, the one in flight finishes, exit 130 with the resume command; resume completes it", async () => {
  const m = new Master(["swarm", "update", "--host", names(1, 4).join(","), "--artifact", v1.file, "--batch", "2", "--concurrency", "1", "--events"]);
  await m.until((e) => e.event === "host.started" && e.host === "w1", "w1 to start");
  m.kill("SIGINT");
  const code = await m.done;
  const id = m.events[0]!.rollout;
  const shown = await show(id);
  const resumed = await fleet.cli(["swarm", "rollout", "resume", id, "--json"]);
  expect({
    code,
    said: m.stderr.includes(`decnet: to resume: decnet swarm rollout resume ${id}`),
    shown: [shown.state, states(shown.hosts)],
    resumed: [resumed.code, json(resumed).rollout.state, json(resumed).hosts.map((h: Json) => [h.host, h.agent])],
    current: names(1, 4).map((n) => current(W(n))),
  }).toEqual({
    code: 130,
    said: true,
    shown: ["interrupted", { w1: "updated", w2: "pending", w3: "pending", w4: "pending" }],
    resumed: [0, "done", names(1, 4).map((h) => [h, "updated"])],
    current: names(1, 4).map(() => v1.id),
  });
});

test("a second Ctrl-C aborts the push in flight: the host is interrupted, its worker stays consistent, and resume completes it", async () => {
  const m = new Master(["swarm", "update", "--host", "w5,w6", "--artifact", v1.file, "--full", "--concurrency", "1", "--events"]);
  await m.until((e) => e.event === "host.started" && e.host === "w5", "w5 to start");
  m.kill("SIGINT");
  await until(() => m.stderr.includes("decnet: stopping"), "the first Ctrl-C to be taken");
  m.kill("SIGINT");
  const code = await m.done;
  const id = m.events[0]!.rollout;
  const shown = await show(id);
  const w5 = W("w5");
  // The worker's own journal finishes or undoes: no staging left, current a whole release.
  await until(async () => (await fleet.health(w5)).busy === null, "w5's updater to finish");
  const consistent = readdirSync(w5.paths.releases).filter((n) => n.startsWith(".staging")).length === 0 && existsSync(join(w5.paths.current, "decnet"));
  const resumed = await fleet.cli(["swarm", "rollout", "resume", id, "--json"]);
  expect({
    code,
    w5: [shown.hosts[0].state, shown.hosts[0].result.error_code],
    w6: shown.hosts[1].state,
    consistent,
    resumed: [resumed.code, json(resumed).rollout.state],
    current: [current(w5), current(W("w6"))],
  }).toEqual({ code: 130, w5: ["interrupted", "aborted"], w6: "pending", consistent: true, resumed: [0, "done"], current: [v1.id, v1.id] });
});

test("kill -9 of the master mid-rollout: `rollout show` lists every host that had finished; resume completes it", async () => {
  const m = new Master(["swarm", "update", "--host", names(1, 4).join(","), "--artifact", v2.file, "--batch", "4", "--concurrency", "1", "--events"]);
  await m.until((e) => e.event === "host.finished", "two hosts to finish", 2);
  m.kill("SIGKILL");
  await m.done;
  const id = m.events[0]!.rollout;
  const finished = m.events.filter((e) => e.event === "host.finished");
  const shown = await show(id);
  const byHost = Object.fromEntries(shown.hosts.map((h: Json) => [h.host, h]));
  await allIdle();
  const resumed = await fleet.cli(["swarm", "rollout", "resume", id, "--json"]);
  expect({
    state: shown.state,
    // Every host the dead master reported finished is in the registry with the same row.
    recorded: finished.map((e) => [e.host, byHost[e.host].state, byHost[e.host].result]),
    inFlight: shown.hosts.filter((h: Json) => h.state === "running").length <= 1,
    resumed: [resumed.code, json(resumed).rollout.state],
    current: names(1, 4).map((n) => current(W(n))),
  }).toEqual({
    state: "interrupted",
    recorded: finished.map((e) => [e.host, e.state, e.result]),
    inFlight: true,
    resumed: [0, "done"],
    current: names(1, 4).map(() => v2.id),
  });
});

test("--include-self in a rollout: each host's updater right after its agent, in the same batch", async () => {
  const m = new Master(["swarm", "update", "--host", "w7,w8", "--artifact", v2.file, "--batch", "1", "--include-self", "--events"]);
  const code = await m.done;
  const seq = m.events.filter((e) => e.host && (e.event !== "host.phase" || e.phase === "installing" || e.phase === "self-updating")).map((e) => `${e.event} ${e.host}${e.phase ? ` ${e.phase}` : ""}`);
  const health = await Promise.all(["w7", "w8"].map(async (n) => (await fleet.health(W(n))).release));
  expect({ code, seq, rows: m.events.filter((e) => e.event === "host.finished").map((e) => [e.host, e.result.agent, e.result.self]), health }).toEqual({
    code: 0,
    seq: ["w7", "w8"].flatMap((h) => [`host.started ${h}`, `host.phase ${h} installing`, `host.phase ${h} self-updating`, `host.finished ${h}`]),
    rows: [["w7", "updated", "updated"], ["w8", "updated", "updated"]],
    health: [v2.id, v2.id],
  });
});

test("on a terminal: a line per batch, live host lines and the overall count under them; elsewhere plain lines", async () => {
  const args = ["swarm", "update", "--host", "w1,w2", "--artifact", v2.file, "--batch", "1"];
  const p = Bun.spawn(["script", "-qec", [fleet.bin, ...args].join(" "), "/dev/null"], { env: { ...process.env, ...fleet.env }, cwd: fleet.root, stdout: "pipe", stderr: "pipe" });
  const [tty, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
  const plain = await fleet.cli(args);
  const lines = plain.stderr.split("\n").filter((l) => /^(rollout|batch|w\d: (uploading|updated))/.test(l)).map((l) => l.replace(/\b[0-9a-f]{8}\b/, "ID").replace(/ in [\d.]+ s$/, "").replace(/^(w\d: uploading).*/, "$1"));
  expect({
    code,
    batches: tty.includes("batch 1/2: w1") && tty.includes("batch 2/2: w2"),
    overall: /\x1b\[2K  overall: 1 updated, 0 failed, 0 skipped \(unreachable\), 1 pending/.test(tty),
    redrawn: /\x1b\[\d+A/.test(tty),
    plainCode: plain.code,
    escapes: /\x1b\[/.test(plain.stdout + plain.stderr),
    lines,
  }).toEqual({
    code: 0, batches: true, overall: true, redrawn: true, plainCode: 0, escapes: false,
    lines: [
      "rollout ID: 2 hosts in 2 batches", "batch 1/2: w1", "w1: uploading", "w1: updated",
      "batch 1 checked: within the budget; overall 1 updated, 0 failed, 0 skipped (unreachable), 1 pending",
      "batch 2/2: w2", "w2: uploading", "w2: updated",
      "batch 2 checked: within the budget; overall 2 updated, 0 failed, 0 skipped (unreachable), 0 pending",
      "rollout ID done: 2 updated, 0 failed, 0 skipped (unreachable), 0 pending",
    ],
  });
});

test("`rollout list` shows the newest first with their tallies", async () => {
  const r = await fleet.cli(["swarm", "rollout", "list", "--json"]);
  const rows = json(r) as Json[];
  expect({ code: r.code, newestFirst: rows[0]!.state, count: rows.length, oldest: [rows.at(-1)!.id, rows.at(-1)!.state] }).toEqual({
    code: 0, newestFirst: "done", count: 12, oldest: [(first.report as unknown as Json).rollout.id, "done"],
  });
});

test("a registry changed by a newer decnet (a schema version past this one's) is refused with one line, and left as it is", async () => {
  const known = sqliteMigrations.length;
  const next = known + 1;
  const home = join(fleet.root, "newer-home");
  const made = await fleet.cli(["swarm", "rollout", "list"], { env: { DECNET_HOME: home } });
  const db = new Database(join(home, "swarm.db"));
  db.exec(`INSERT INTO schema_version (version, name, applied_at, applied_by) VALUES (${next}, 'from a newer decnet', 'later', 'someone')`);
  db.close();
  const r = await fleet.cli(["swarm", "rollout", "list"], { env: { DECNET_HOME: home } });
  const after = new Database(join(home, "swarm.db"), { readonly: true });
  const versions = after.query("SELECT version FROM schema_version ORDER BY version").all();
  after.close();
  expect({ made: made.code, code: r.code, oneLine: oneLine(r), line: r.stderr.trim(), versions }).toEqual({
    made: 0,
    code: 1,
    oneLine: true,
    line: `decnet: the registry ${join(home, "swarm.db")} is at schema version ${next}, newer than this decnet knows (${known}); it was changed by a newer decnet — run a decnet at least as new as the one that last used it`,
    versions: Array.from({ length: next }, (_, i) => ({ version: i + 1 })),
  });
});

test("SIGTERM is both Ctrl-Cs at once: the push in flight is aborted and recorded interrupted, exit 130; resume completes it", async () => {
  const m = new Master(["swarm", "update", "--host", "w7,w8", "--artifact", v2.file, "--full", "--concurrency", "1", "--events"]);
  await m.until((e) => e.event === "host.started" && e.host === "w7", "w7 to start");
  m.kill("SIGTERM");
  const code = await m.done;
  const id = m.events[0]!.rollout;
  const shown = await show(id);
  await allIdle();
  const resumed = await fleet.cli(["swarm", "rollout", "resume", id, "--json"]);
  expect({
    code,
    said: m.stderr.includes("decnet: SIGTERM: no new host starts") && m.stderr.includes(`decnet: to resume: decnet swarm rollout resume ${id}`),
    hosts: shown.hosts.map((h: Json) => [h.host, h.state, h.result?.error_code ?? null]),
    resumed: [resumed.code, json(resumed).rollout.state],
    current: [current(W("w7")), current(W("w8"))],
  }).toEqual({ code: 130, said: true, hosts: [["w7", "interrupted", "aborted"], ["w8", "pending", null]], resumed: [0, "done"], current: [v2.id, v2.id] });
});
