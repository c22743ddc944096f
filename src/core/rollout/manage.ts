/**
 * `swarm rollout list | show | abort`: rollouts as the operator sees them
 * (a running one whose master died is interrupted), with their tallies and
 * the command that resumes them; abort drops the cached release.
 */
import { type Tally, tally } from "./budget.ts";
import { resumeCommand } from "./events.ts";
import { claimForAbort, effectiveState, findRollout, remoteOwnersAlive } from "./lifecycle.ts";
import { dropRelease } from "./kept-release.ts";
import { openRolloutStore, type Rollout } from "./store.ts";

export interface RolloutView extends Rollout {
  tally: Tally;
  /** The command that continues it, when it can be. */
  resume: string | null;
}

export function view(r: Rollout, remoteAlive?: ReadonlySet<string>): RolloutView {
  const state = effectiveState(r, remoteAlive);
  return { ...r, state, tally: tally(r.hosts), resume: state === "halted" || state === "interrupted" ? resumeCommand(r.id) : null };
}

export const LIST_LIMIT = 50;

export async function listRollouts(limit = LIST_LIMIT): Promise<RolloutView[]> {
  await using store = await openRolloutStore();
  const rs = await store.list(limit);
  const alive = await remoteOwnersAlive(rs);
  return rs.map((r) => view(r, alive));
}

export async function showRollout(id: string): Promise<RolloutView> {
  await using store = await openRolloutStore();
  const r = await findRollout(store, id);
  return view(r, await remoteOwnersAlive([r]));
}

export async function abortRollout(id: string): Promise<RolloutView> {
  await using store = await openRolloutStore();
  const r = await claimForAbort(store, id);
  dropRelease(r.id);
  await store.dropShared(r.id);
  return view(r);
}
