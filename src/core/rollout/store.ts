/**
 * A rollout as the registry keeps it (DESIGN §12), and the store's interface:
 * asynchronous from the start, so the PostgreSQL backend (DESIGN §15) slots
 * in behind `openRolloutStore` without changing a caller.
 */
import type { Push } from "../registry.ts";
import type { HostResult } from "../swarm/push.ts";

export type RolloutState = "running" | "done" | "halted" | "interrupted" | "aborted";

/**
 * pending: not started (in this run); running: started, not finished (after
 * a kill -9 of the master, in flight when it died); interrupted: stopped by
 * a second Ctrl-C; reverted: updated, then rolled back by --halt-rollback.
 */
export type HostState = "pending" | "running" | "updated" | "failed" | "unreachable" | "interrupted" | "reverted";

/** Hosts allowed to fail (release failures) or be unreachable before a rollout halts; null: no limit. */
export interface Limits {
  failures: number | null;
  unreachable: number | null;
}

export interface RolloutSettings {
  /** The flags as the operator gave them (null: not given), shown by `rollout show`. */
  canary: string | null;
  batch: string | null;
  max_failures: string | null;
  max_unreachable: string | null;
  pause: string | null;
  pause_ms: number;
  /** The budget as host counts, resolved once over the whole rollout. */
  limits: Limits;
  halt_rollback: boolean;
  include_self: boolean;
  full: boolean;
  allow_downgrade: boolean;
  concurrency: number;
}

export interface ReleaseInfo {
  id: string;
  version: string;
  size: number;
  source: string;
  signer: string | null;
}

export interface RolloutHost {
  host: string;
  /** Index into `batches` (batch 0 holds the canaries when there are some). */
  batch: number;
  state: HostState;
  /** The run (1 for the first, +1 per resume) in which it last started. */
  run: number | null;
  started_at: string | null;
  finished_at: string | null;
  /** The push's row, once it finished. */
  result: HostResult | null;
  /** What --halt-rollback did to it. */
  note: string | null;
}

export interface Rollout {
  id: string;
  created_at: string;
  updated_at: string;
  operator: string;
  state: RolloutState;
  release: ReleaseInfo;
  /** The cached release (lib/paths rolloutRelease), until the rollout is done or aborted. */
  release_file: string | null;
  settings: RolloutSettings;
  batches: string[][];
  /** Whether batches[0] is the canaries. */
  canaries: boolean;
  run: number;
  /** Outcomes of runs from this one on count against the budget (a resumed halt starts afresh). */
  budget_from: number;
  /** The master running it ("hostname pid start-time"), while it runs. */
  owner: string | null;
  halt_reason: string | null;
  hosts: RolloutHost[];
}

/** What a compare-and-set transition expects the rollout to be. */
export interface Expect {
  state: RolloutState;
  owner: string | null;
  run: number;
}

export type RolloutPatch = Partial<Pick<Rollout, "state" | "owner" | "run" | "budget_from" | "halt_reason" | "release_file">>;

export interface RolloutStore extends AsyncDisposable {
  create(r: Rollout): Promise<void>;
  get(id: string): Promise<Rollout | null>;
  /** The newest `limit` rollouts, newest first. */
  list(limit: number): Promise<Rollout[]>;
  /** Just the state: checked before each host starts (an abort from another shell stops the run). */
  state(id: string): Promise<RolloutState | null>;
  /**
   * Applies `patch` only if the rollout is still as `expect` says (and puts
   * hosts in `requeue` back to pending), in one transaction; false when
   * another master got there first.
   */
  transition(id: string, expect: Expect, patch: RolloutPatch, at: string, requeue?: HostState[]): Promise<boolean>;
  hostStarted(id: string, host: string, run: number, at: string): Promise<void>;
  /** A host's outcome and its push history rows, written together the moment it finishes. */
  hostFinished(id: string, host: string, f: { state: HostState; run: number; at: string; result: HostResult; pushes: Push[] }): Promise<void>;
  /** --halt-rollback's outcome for a host (state reverted, or unchanged with the reason in the note). */
  hostNote(id: string, host: string, state: HostState, note: string, at: string): Promise<void>;
  /** A shared registry (PostgreSQL) keeps the rollout's release file too (`id`: kept-release.sharedKey, per target), so another master can resume it; no-op on sqlite (`file` is not even asked: a push packs its tarball only when it must). */
  keepShared(id: string, releaseId: string, file: () => Promise<string>): Promise<void>;
  /** Writes the shared copy of the rollout's release to `file` (staged, then renamed); false when there is none. */
  fetchShared(id: string, file: string): Promise<boolean>;
  /** Drops the rollout's shared releases, every target's. */
  dropShared(id: string): Promise<void>;
}

/** The registry's rollout store (bun:sqlite, or PostgreSQL with DECNET_REGISTRY_URL or a postgres:// `file`). */
export async function openRolloutStore(file?: string): Promise<RolloutStore> {
  const { Registry } = await import("../registry.ts");
  const { RegistryRollouts } = await import("../registry-rollouts.ts");
  return new RegistryRollouts(new Registry(file));
}
