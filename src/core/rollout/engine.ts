/**
 * Runs a claimed rollout: its batches in order (canaries first), at most
 * `concurrency` hosts at once, each host's outcome written the moment it
 * finishes; the budget checked as hosts finish and after every batch; the
 * pause between batches; a stop (first Ctrl-C), an abort of the hosts in
 * flight (second) or an abort from another shell; --halt-rollback.
 */
import type { Push } from "../registry.ts";
import type { HostResult, Progress } from "../swarm/push.ts";
import { classify, overBudget, tally } from "./budget.ts";
import { type RolloutEvent, resumeCommand } from "./events.ts";
import type { Rollout, RolloutHost, RolloutState, RolloutStore } from "./store.ts";

export interface EngineDeps {
  store: RolloutStore;
  /** The master running it (store.transition's owner). */
  owner: string;
  /** One host's push of the rollout's release; `signal` aborts its requests. */
  push: (host: string, signal: AbortSignal, onProgress: (p: Progress) => void) => Promise<HostResult>;
  /** The push history rows a finished host adds to the registry. */
  history: (r: HostResult) => Push[];
  /** --halt-rollback: back to the previous release; `release` is what the host then runs. */
  revert: (host: string, previous: string | null) => Promise<{ ok: boolean; detail: string }>;
  /** Stop starting hosts (the first Ctrl-C). */
  stop: AbortSignal;
  /** Abort the hosts in flight (the second). */
  abort: AbortSignal;
  onEvent?: (e: RolloutEvent) => void;
  onProgress?: (p: Progress) => void;
  /** Waits `ms`, or less when `signal` fires. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  now?: () => Date;
}

/** Waits `ms`, returning early when `signal` fires. */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}

/** Runs `fn` over `items`, at most `n` at once. */
async function lanes<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

/**
 * Runs `r` (claimed by `d.owner`: state running, this run's number) to its
 * end and returns it as the store then holds it.
 */
export async function runRollout(r: Rollout, d: EngineDeps): Promise<Rollout> {
  const now = () => (d.now?.() ?? new Date()).toISOString();
  const sleep = d.sleep ?? abortableSleep;
  const emit = (e: DistributiveOmit<RolloutEvent, "rollout" | "at">) => d.onEvent?.({ rollout: r.id, at: now(), ...e } as RolloutEvent);
  const hosts = new Map<string, RolloutHost>(r.hosts.map((h) => [h.host, { ...h }]));
  const all = () => [...hosts.values()];
  const { limits, concurrency, pause_ms } = r.settings;

  emit({ event: "rollout.started", run: r.run, release: r.release, batches: r.batches, canaries: r.canaries, settings: r.settings, hosts: all().map(({ host, batch, state }) => ({ host, batch, state })) });
  // A rollout that died between exceeding its budget and saying so halts again before starting anyone.
  let halt = overBudget(all(), limits, r.budget_from);
  let abortedElsewhere = false;
  let started = false;
  const stopped = () => halt !== null || d.stop.aborted || abortedElsewhere;

  const runHost = async (name: string, batch: number) => {
    if (stopped()) return;
    if ((await d.store.state(r.id)) === "aborted") abortedElsewhere = true;
    if (stopped()) return;
    const h = hosts.get(name)!;
    Object.assign(h, { state: "running", run: r.run, started_at: now(), finished_at: null });
    await d.store.hostStarted(r.id, name, r.run, h.started_at!);
    emit({ event: "host.started", host: name, batch });
    let phase: string | null = null;
    const result = await d.push(name, d.abort, (p) => {
      d.onProgress?.(p);
      if (p.phase !== "done" && p.phase !== phase) emit({ event: "host.phase", host: name, phase: (phase = p.phase) });
    });
    const state = classify(result);
    Object.assign(h, { state, result, finished_at: now() });
    await d.store.hostFinished(r.id, name, { state, run: r.run, at: h.finished_at!, result, pushes: d.history(result) });
    emit({ event: "host.finished", host: name, batch, state, result });
    halt ??= overBudget(all(), limits, r.budget_from);
  };

  for (let b = 0; b < r.batches.length && !stopped(); b++) {
    const todo = r.batches[b]!.filter((n) => hosts.get(n)!.state === "pending");
    if (!todo.length) continue;
    if (started && pause_ms > 0) {
      emit({ event: "rollout.paused", ms: pause_ms, before_batch: b });
      await sleep(pause_ms, d.stop);
      if (stopped()) break;
    }
    started = true;
    emit({ event: "batch.started", batch: b, of: r.batches.length, canary: r.canaries && b === 0, hosts: todo });
    await lanes(todo, concurrency, (n) => runHost(n, b));
    emit({ event: "batch.checked", batch: b, tally: tally(all()), limits, halt });
  }

  if (halt && r.settings.halt_rollback && !abortedElsewhere) await revertUpdated(r, d, hosts, emit, now);
  const left = all().some((h) => h.state === "pending" || h.state === "running" || h.state === "interrupted");
  let state: RolloutState = abortedElsewhere ? "aborted" : halt ? "halted" : left ? "interrupted" : "done";
  const moved = await d.store.transition(r.id, { state: "running", owner: d.owner, run: r.run }, { state, owner: null, halt_reason: halt, ...(state === "done" ? { release_file: null } : {}) }, now());
  // Only an abort from another shell takes a running rollout from its owner.
  if (!moved) state = "aborted";
  const resume = state === "halted" || state === "interrupted" ? resumeCommand(r.id) : null;
  emit({ event: "rollout.finished", state, tally: tally(all()), halt_reason: halt, resume });
  return (await d.store.get(r.id))!;
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** --halt-rollback: every host this rollout updated goes back to the release it ran before. */
async function revertUpdated(r: Rollout, d: EngineDeps, hosts: Map<string, RolloutHost>, emit: (e: DistributiveOmit<RolloutEvent, "rollout" | "at">) => void, now: () => string) {
  const updated = [...hosts.values()].filter((h) => h.state === "updated");
  await lanes(updated, r.settings.concurrency, async (h) => {
    const previous = h.result?.previous ?? null;
    const { ok, detail } = await d.revert(h.host, previous);
    const state = ok ? "reverted" : "updated";
    const note = ok ? `rolled back by --halt-rollback: ${detail}` : `--halt-rollback failed: ${detail}`;
    h.state = state;
    await d.store.hostNote(r.id, h.host, state, note, now());
    emit({ event: "host.reverted", host: h.host, state, note });
  });
}
