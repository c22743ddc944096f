/**
 * Who runs a rollout and what may happen to it next: a new id, the owning
 * master (hostname, pid, start time) and whether it still lives, the state
 * as the operator should see it (running with a dead owner is interrupted),
 * and the compare-and-set claims behind resume and abort.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { DecnetError, usageError } from "../../lib/errors.ts";
import { isAlive, startTime } from "../../lib/procfs.ts";
import { holderAlive } from "../registry-leases.ts";
import type { HostState, Rollout, RolloutState, RolloutStore } from "./store.ts";

const ID = /^[0-9a-f]{8}$/;

export const newRolloutId = () => randomBytes(4).toString("hex");

/** This process as a rollout's owner. */
export function masterOwner(): string {
  return `${hostname()} ${process.pid} ${startTime(process.pid) ?? 0}`;
}

/**
 * Whether the master named by `owner` still runs. One on another machine
 * (a shared registry, DESIGN §15) is alive while its leases heartbeat:
 * `remoteAlive` holds those found so (remoteOwnersAlive); without it, it is
 * taken to be alive, since assuming it dead could push to a host twice at once.
 */
export function ownerAlive(owner: string | null, remoteAlive?: ReadonlySet<string>): boolean {
  if (!owner) return false;
  const [host, pid, start] = owner.split(" ");
  if (host !== hostname()) return remoteAlive ? remoteAlive.has(owner) : true;
  return isAlive(Number(pid)) && String(startTime(Number(pid)) ?? 0) === start;
}

/** The state to show: a running rollout whose master died (kill -9, power) is interrupted. */
export function effectiveState(r: Pick<Rollout, "state" | "owner">, remoteAlive?: ReadonlySet<string>): RolloutState {
  return r.state === "running" && !ownerAlive(r.owner, remoteAlive) ? "interrupted" : r.state;
}

/** The owners on other machines of running rollouts in `rs` whose leases still heartbeat. */
export async function remoteOwnersAlive(rs: Array<Pick<Rollout, "state" | "owner">>): Promise<Set<string>> {
  const remote = new Set(rs.filter((r) => r.state === "running" && r.owner && r.owner.split(" ")[0] !== hostname()).map((r) => r.owner!));
  const alive = new Set<string>();
  for (const owner of remote) if (await holderAlive(owner)) alive.add(owner);
  return alive;
}

/** The rollout `id`, or a usage error for an id that is malformed or unknown. */
export async function findRollout(store: RolloutStore, id: string): Promise<Rollout> {
  const r = ID.test(id) ? await store.get(id) : null;
  if (!r) throw usageError(`no rollout ${id.slice(0, 40)}`, "see `decnet swarm rollout list`");
  return r;
}

function refuseFinished(r: Rollout, verb: "resume" | "abort"): void {
  const state = effectiveState(r);
  if (state === "done") throw usageError(`rollout ${r.id} is done; there is nothing to ${verb}`);
  if (state === "aborted") throw usageError(`rollout ${r.id} was aborted; it cannot be ${verb === "resume" ? "resumed" : "aborted again"}`, verb === "resume" ? "start a new one with `decnet swarm update`" : undefined);
}

/**
 * Takes a halted or interrupted rollout for a new run: running, owned by
 * `owner`, run + 1, hosts that never finished back to pending (and the
 * unreachable ones too with `retryUnreachable`, and those --halt-rollback
 * reverted). Resuming a halt counts the budget afresh; an interruption keeps
 * counting. Refuses a rollout that is done, aborted or running elsewhere, or
 * that fails `check`.
 */
export async function claimForResume(store: RolloutStore, id: string, owner: string, o: { retryUnreachable?: boolean; check?: (r: Rollout) => Promise<void> } = {}): Promise<Rollout> {
  const r = await findRollout(store, id);
  refuseFinished(r, "resume");
  // A master on another machine (a shared registry) is alive while its leases heartbeat.
  if (effectiveState(r, await remoteOwnersAlive([r])) === "running") {
    const [host, pid] = (r.owner ?? "").split(" ");
    throw new DecnetError("failed", `rollout ${r.id} is running (pid ${pid} on ${host})`, { hint: "wait for it, or stop it with Ctrl-C there" });
  }
  // What must hold before it is taken (its release still cached).
  await o.check?.(r);
  const requeue: HostState[] = ["running", "interrupted", "reverted", ...(o.retryUnreachable ? (["unreachable"] as const) : [])];
  const run = r.run + 1;
  const ok = await store.transition(r.id, { state: r.state, owner: r.owner, run: r.run }, {
    state: "running", owner, run, halt_reason: null, budget_from: r.state === "halted" ? run : r.budget_from,
  }, new Date().toISOString(), requeue);
  if (!ok) throw new DecnetError("failed", `rollout ${r.id} changed while it was being resumed`, { hint: "see `decnet swarm rollout show " + r.id + "` and try again" });
  return (await store.get(r.id))!;
}

/**
 * Marks a rollout aborted (for good: it cannot be resumed). A master still
 * running it starts no further host and finishes those in flight.
 */
export async function claimForAbort(store: RolloutStore, id: string): Promise<Rollout> {
  const r = await findRollout(store, id);
  refuseFinished(r, "abort");
  const ok = await store.transition(r.id, { state: r.state, owner: r.owner, run: r.run }, { state: "aborted", owner: null, release_file: null }, new Date().toISOString());
  if (!ok) throw new DecnetError("failed", `rollout ${r.id} changed while it was being aborted`, { hint: "try again" });
  return (await store.get(r.id))!;
}
