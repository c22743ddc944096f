/**
 * The rollout engine in process, with a fake push and the real sqlite store
 * in a temp dir: which hosts it starts and when it stops (budget, Ctrl-C,
 * an abort from elsewhere), what the store holds as hosts finish, resume,
 * the pause, and --halt-rollback.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type EngineDeps, runRollout } from "../../src/core/rollout/engine.ts";
import type { RolloutEvent } from "../../src/core/rollout/events.ts";
import { claimForAbort, claimForResume } from "../../src/core/rollout/lifecycle.ts";
import { planRollout, type RolloutFlags } from "../../src/core/rollout/plan.ts";
import { openRolloutStore, type HostState, type Rollout, type RolloutStore } from "../../src/core/rollout/store.ts";
import type { HostResult } from "../../src/core/swarm/push.ts";

const dir = mkdtempSync(join(tmpdir(), "decnet-engine-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

type Verdict = "updated" | "failed" | "unreachable";

/** A row as pushHost would return it for `verdict`. */
function row(host: string, verdict: Verdict | "aborted", previous = "p".repeat(64)): HostResult {
  const agent = verdict === "updated" ? "updated" : verdict === "failed" ? "rolled-back" : "error";
  const error_code = { updated: null, failed: "rolled_back", unreachable: "unreachable", aborted: "aborted" }[verdict];
  return { host, address: "127.0.0.1", agent, self: null, detail: verdict, release_id: "r".repeat(64), transfer: null, self_transfer: null, install: null, signer: null, error_code, previous, bytes_sent: 0, duration_ms: 1 };
}

interface World {
  store: RolloutStore;
  rollout: Rollout;
  /** Hosts in the order they were started. */
  started: string[];
  events: RolloutEvent[];
  reverted: string[];
  run(o?: Partial<EngineDeps>): Promise<Rollout>;
}

/** A new rollout of `n` hosts with `flags`, whose hosts answer as `verdicts` says (default updated). */
async function world(n: number, flags: Omit<RolloutFlags, "concurrency"> & { concurrency?: number }, verdicts: Record<string, Verdict> = {}, o: { push?: EngineDeps["push"] } = {}): Promise<World> {
  const store = await openRolloutStore(join(dir, `swarm-${++files}.db`));
  const names = Array.from({ length: n }, (_, i) => `w${i + 1}`);
  const p = planRollout(names, { concurrency: 8, ...flags }, () => true);
  const at = new Date().toISOString();
  const rollout: Rollout = {
    id: (files + 0x10000000).toString(16), created_at: at, updated_at: at, operator: "test", state: "running",
    release: { id: "r".repeat(64), version: "1", size: 1, source: "test", signer: null }, release_file: "kept",
    settings: p.settings, batches: p.batches, canaries: p.canaries, run: 1, budget_from: 1, owner: "me", halt_reason: null,
    hosts: p.batches.flatMap((b, batch) => b.map((host) => ({ host, batch, state: "pending" as HostState, run: null, started_at: null, finished_at: null, result: null, note: null }))),
  };
  await store.create(rollout);
  const w: World = {
    store, rollout, started: [], events: [], reverted: [],
    run: (over = {}) => runRollout(w.rollout, {
      store, owner: w.rollout.owner!, stop: new AbortController().signal, abort: new AbortController().signal,
      history: () => [],
      push: o.push ?? (async (h) => { w.started.push(h); return row(h, verdicts[h] ?? "updated"); }),
      revert: async (h) => { w.reverted.push(h); return { ok: h !== "w4", detail: h !== "w4" ? "now on 0.9" : "connection refused" }; },
      onEvent: (e) => w.events.push(e),
      sleep: async () => {},
      ...over,
    }),
  };
  return w;
}

const states = (r: Rollout) => Object.fromEntries(r.hosts.map((h) => [h.host, h.state]));

test("--batch 2 --max-failures 1 with a release that fails everywhere: one batch touched, halted, the rest pending", async () => {
  const w = await world(6, { batch: "2", maxFailures: "1" }, Object.fromEntries(["w1", "w2", "w3", "w4", "w5", "w6"].map((h) => [h, "failed" as const])));
  const end = await w.run();
  expect({
    started: w.started,
    state: end.state,
    halt: end.halt_reason,
    hosts: states(end),
    owner: end.owner,
    kept: end.release_file,
    events: w.events.map((e) => e.event + ("host" in e && typeof e.host === "string" ? ` ${e.host}` : "")),
    last: w.events.at(-1),
  }).toEqual({
    started: ["w1", "w2"],
    state: "halted",
    halt: "2 release failures, more than the 1 allowed",
    hosts: { w1: "failed", w2: "failed", w3: "pending", w4: "pending", w5: "pending", w6: "pending" },
    owner: null,
    kept: "kept",
    events: ["rollout.started", "batch.started", "host.started w1", "host.started w2", "host.finished w1", "host.finished w2", "batch.checked", "rollout.finished"],
    last: { event: "rollout.finished", rollout: w.rollout.id, at: expect.any(String), state: "halted", tally: { updated: 0, failed: 2, unreachable: 0, reverted: 0, pending: 4 }, halt_reason: "2 release failures, more than the 1 allowed", resume: `decnet swarm rollout resume ${w.rollout.id}` },
  });
});

test("once the budget is exceeded no new host starts, even inside a batch; the host in flight finishes", async () => {
  let release!: () => void;
  const slow = new Promise<void>((r) => (release = r));
  const started: string[] = [];
  const w = await world(4, { maxFailures: "0", concurrency: 2 }, {}, {
    push: async (h) => {
      started.push(h);
      if (h === "w1") return row(h, "failed");
      await slow;
      return row(h, "updated");
    },
  });
  const running = w.run();
  // w1 has failed by the time w2 is released: nothing after it may start.
  while (!w.events.some((e) => e.event === "host.finished")) await Bun.sleep(1);
  release();
  const end = await running;
  expect({ started, state: end.state, hosts: states(end) }).toEqual({ started: ["w1", "w2"], state: "halted", hosts: { w1: "failed", w2: "updated", w3: "pending", w4: "pending" } });
});

test("unreachable hosts do not count against --max-failures (the rollout goes on); --max-unreachable halts on them", async () => {
  const down = await world(4, { batch: "2", maxFailures: "0" }, { w2: "unreachable" });
  const limited = await world(4, { batch: "1", maxUnreachable: "0" }, { w2: "unreachable" });
  const a = await down.run();
  const b = await limited.run();
  expect({ a: [a.state, states(a)], b: [b.state, b.halt_reason, states(b)] }).toEqual({
    a: ["done", { w1: "updated", w2: "unreachable", w3: "updated", w4: "updated" }],
    b: ["halted", "1 host unreachable, more than the 0 allowed", { w1: "updated", w2: "unreachable", w3: "pending", w4: "pending" }],
  });
});

test("each host's outcome is in the store the moment it finishes (what a kill -9 of the master leaves)", async () => {
  const seen: Record<string, Record<string, string>> = {};
  const w = await world(3, { batch: "1" }, {}, {
    push: async (h) => {
      seen[h] = states((await w.store.get(w.rollout.id))!);
      return row(h, "updated");
    },
  });
  await w.run();
  expect(seen).toEqual({
    w1: { w1: "running", w2: "pending", w3: "pending" },
    w2: { w1: "updated", w2: "running", w3: "pending" },
    w3: { w1: "updated", w2: "updated", w3: "running" },
  });
});

test("the first Ctrl-C stops starting hosts and lets those in flight finish; resume runs only what is left", async () => {
  const stop = new AbortController();
  const w = await world(4, { batch: "2" });
  const pushed: string[] = [];
  const end = await w.run({
    stop: stop.signal,
    push: async (h) => {
      pushed.push(h);
      if (h === "w1") stop.abort();
      return row(h, "updated");
    },
  });
  const resumed = await claimForResume(w.store, w.rollout.id, "me again");
  w.rollout = resumed;
  const again: string[] = [];
  const done = await w.run({ push: async (h) => { again.push(h); return row(h, "updated"); } });
  expect({ pushed, end: [end.state, states(end)], resumed: [resumed.run, resumed.budget_from, resumed.owner], again, done: [done.state, done.release_file, states(done)] }).toEqual({
    pushed: ["w1", "w2"],
    end: ["interrupted", { w1: "updated", w2: "updated", w3: "pending", w4: "pending" }],
    resumed: [2, 1, "me again"],
    again: ["w3", "w4"],
    done: ["done", null, { w1: "updated", w2: "updated", w3: "updated", w4: "updated" }],
  });
});

test("the second Ctrl-C aborts the pushes in flight: those hosts are interrupted, and pending again on resume", async () => {
  const stop = new AbortController();
  const abort = new AbortController();
  const w = await world(3, {});
  const end = await w.run({
    stop: stop.signal,
    abort: abort.signal,
    push: async (h, signal) => {
      if (h === "w2") {
        stop.abort();
        abort.abort();
      }
      return row(h, signal.aborted ? "aborted" : "updated");
    },
  });
  const resumed = await claimForResume(w.store, w.rollout.id, "me again");
  expect({ end: [end.state, states(end)], resumed: states(resumed) }).toEqual({
    end: ["interrupted", { w1: "updated", w2: "interrupted", w3: "interrupted" }],
    resumed: { w1: "updated", w2: "pending", w3: "pending" },
  });
});

test("--pause waits between batches (not before the first, not after the last), and a Ctrl-C cuts it short", async () => {
  const pauses: number[] = [];
  const w = await world(3, { batch: "1", pause: "5m" });
  await w.run({ sleep: async (ms) => { pauses.push(ms); } });
  const stop = new AbortController();
  const cut = await world(3, { batch: "1", pause: "5m" });
  const end = await cut.run({ stop: stop.signal, sleep: async () => stop.abort() });
  expect({ pauses, paused: w.events.filter((e) => e.event === "rollout.paused").map((e) => "before_batch" in e && e.before_batch), cut: [cut.started, end.state] }).toEqual({
    pauses: [300_000, 300_000],
    paused: [1, 2],
    cut: [["w1"], "interrupted"],
  });
});

test("resuming a halt counts the budget afresh and leaves unreachable hosts alone unless asked", async () => {
  const w = await world(5, { batch: "2", maxFailures: "0" }, { w1: "unreachable", w2: "failed" });
  const halted = await w.run();
  w.rollout = await claimForResume(w.store, w.rollout.id, "me again");
  const afterFirst = await w.run();
  const retried = await world(3, { batch: "1", maxUnreachable: "0" }, { w1: "unreachable" });
  await retried.run();
  retried.rollout = await claimForResume(retried.store, retried.rollout.id, "again", { retryUnreachable: true });
  expect({
    halted: [halted.state, states(halted)],
    resumed: [afterFirst.state, afterFirst.budget_from, w.started, states(afterFirst)],
    retried: states(retried.rollout),
  }).toEqual({
    halted: ["halted", { w1: "unreachable", w2: "failed", w3: "pending", w4: "pending", w5: "pending" }],
    resumed: ["done", 2, ["w1", "w2", "w3", "w4", "w5"], { w1: "unreachable", w2: "failed", w3: "updated", w4: "updated", w5: "updated" }],
    retried: { w1: "pending", w2: "pending", w3: "pending" },
  });
});

test("--halt-rollback rolls back the hosts this rollout updated, and says which it could not", async () => {
  const w = await world(6, { batch: "3", maxFailures: "0", haltRollback: true }, { w5: "failed" });
  const end = await w.run();
  expect({
    reverted: w.reverted.sort(),
    hosts: states(end),
    notes: Object.fromEntries(end.hosts.filter((h) => h.note).map((h) => [h.host, h.note])),
  }).toEqual({
    reverted: ["w1", "w2", "w3", "w4", "w6"],
    hosts: { w1: "reverted", w2: "reverted", w3: "reverted", w4: "updated", w5: "failed", w6: "reverted" },
    notes: {
      w1: "rolled back by --halt-rollback: now on 0.9", w2: "rolled back by --halt-rollback: now on 0.9", w3: "rolled back by --halt-rollback: now on 0.9",
      w4: "--halt-rollback failed: connection refused", w6: "rolled back by --halt-rollback: now on 0.9",
    },
  });
});

test("an abort from another shell stops the run before its next host; abort then resume is refused", async () => {
  const w = await world(3, { batch: "1" }, {}, {
    push: async (h) => {
      if (h === "w1") await claimForAbort(w.store, w.rollout.id);
      return row(h, "updated");
    },
  });
  const end = await w.run();
  let refused = "";
  try {
    await claimForResume(w.store, w.rollout.id, "me again");
  } catch (e) {
    refused = (e as Error).message;
  }
  expect({ state: end.state, hosts: states(end), refused }).toEqual({
    state: "aborted",
    hosts: { w1: "updated", w2: "pending", w3: "pending" },
    refused: `rollout ${w.rollout.id} was aborted; it cannot be resumed`,
  });
});
