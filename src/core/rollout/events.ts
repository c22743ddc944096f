/**
 * A rollout's progress as events (`swarm update --events` prints one NDJSON
 * line per event as it happens): replayed in order, they rebuild every
 * host's final state and row.
 */
import type { HostResult } from "../swarm/push.ts";
import type { Tally } from "./budget.ts";
import type { HostState, Limits, ReleaseInfo, RolloutSettings, RolloutState } from "./store.ts";

interface Base {
  rollout: string;
  at: string;
}

export type RolloutEvent = Base &
  (
    | { event: "rollout.started"; run: number; release: ReleaseInfo; batches: string[][]; canaries: boolean; settings: RolloutSettings; hosts: Array<{ host: string; batch: number; state: HostState }> }
    | { event: "batch.started"; batch: number; of: number; canary: boolean; hosts: string[] }
    | { event: "rollout.paused"; ms: number; before_batch: number }
    | { event: "host.started"; host: string; batch: number }
    | { event: "host.phase"; host: string; phase: "uploading" | "installing" | "verifying" | "self-updating" }
    | { event: "host.finished"; host: string; batch: number; state: HostState; result: HostResult }
    | { event: "batch.checked"; batch: number; tally: Tally; limits: Limits; halt: string | null }
    | { event: "host.reverted"; host: string; state: HostState; note: string }
    | { event: "rollout.finished"; state: RolloutState; tally: Tally; halt_reason: string | null; resume: string | null }
  );

/** The command that continues a rollout, as printed when one halts or is interrupted. */
export const resumeCommand = (id: string) => `decnet swarm rollout resume ${id}`;
