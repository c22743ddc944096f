/**
 * `swarm rollout list | show | abort`: rollouts as the operator sees them
 * (a running one whose master died is interrupted), with their tallies and
 * the command that resumes them; abort drops the cached release.
 */
import { type Tally, tally } from "./budget.ts";
import { resumeCommand } from "./events.ts";
import { claimForAbort, effectiveState, findRollout } from "./lifecycle.ts";
import { dropRelease } from "./kept-release.ts";
import { openRolloutStore, type Rollout } from "./store.ts";

export interface RolloutView extends Rollout {
  tally: Tally;
  /** The command that continues it, when it can be. */
  resume: string | null;
}

export function view(r: Rollout): RolloutView {
  const state = effectiveState(r);
  return { ...r, state, tally: tally(r.hosts), resume: state === "halted" || state === "interrupted" ? resumeCommand(r.id) : null };
}

export const LIST_LIMIT = 50;

export async function listRollouts(limit = LIST_LIMIT): Promise<RolloutView[]> {
  await using store = await openRolloutStore();
  return (await store.list(limit)).map(view);
}

export async function showRollout(id: string): Promise<RolloutView> {
  await using store = await openRolloutStore();
  return view(await findRollout(store, id));
}

export async function abortRollout(id: string): Promise<RolloutView> {
  await using store = await openRolloutStore();
  const r = await claimForAbort(store, id);
  dropRelease(r.id);
  await store.dropShared(r.id);
  return view(r);
}
