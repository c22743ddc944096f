/**
 * A rollout's plan from the operator's flags: the canaries, then batches of
 * the rest in selection order, and the failure budget as host counts — all
 * resolved once, over every host of the rollout (DESIGN §12).
 */
import { usageError } from "../../lib/errors.ts";
import { parseCount, parseDuration, resolveCanary, resolveCount } from "./settings.ts";
import type { Limits, RolloutSettings } from "./store.ts";

export interface RolloutFlags {
  canary?: string;
  batch?: string;
  maxFailures?: string;
  maxUnreachable?: string;
  pause?: string;
  haltRollback?: boolean;
  includeSelf?: boolean;
  full?: boolean;
  allowDowngrade?: boolean;
  concurrency: number;
}

export interface Plan {
  batches: string[][];
  canaries: boolean;
  settings: RolloutSettings;
}

/** Checks every flag that needs no host list: usage errors come before any work. */
export function checkFlags(f: RolloutFlags): void {
  if (f.batch !== undefined) parseCount("--batch", f.batch, 1);
  if (f.maxFailures !== undefined) parseCount("--max-failures", f.maxFailures, 0);
  if (f.maxUnreachable !== undefined) parseCount("--max-unreachable", f.maxUnreachable, 0);
  if (f.pause !== undefined) parseDuration("--pause", f.pause);
  const budgeted = [f.canary, f.batch, f.maxFailures, f.maxUnreachable].some((x) => x !== undefined);
  if (f.haltRollback && !budgeted) {
    throw usageError("--halt-rollback needs a rollout that can halt", "add --canary, --batch, --max-failures or --max-unreachable");
  }
}

/** Splits `hosts` into runs of `size`. */
function chunks(hosts: string[], size: number): string[][] {
  const out: string[][] = [];
  for (let i = 0; i < hosts.length; i += size) out.push(hosts.slice(i, i + size));
  return out;
}

/**
 * The plan for `selected` (in the order the hosts were selected). `enrolled`
 * tells a --canary name that is not enrolled from one that is not selected.
 */
export function planRollout(selected: string[], f: RolloutFlags, enrolled: (name: string) => boolean): Plan {
  checkFlags(f);
  const total = selected.length;
  const canary = f.canary === undefined ? [] : resolveCanary(f.canary, selected, enrolled);
  const rest = selected.filter((h) => !canary.includes(h));
  // A percentage batch is of all the rollout's hosts (canaries included), rounded down, at least 1.
  const size = f.batch === undefined ? rest.length : resolveCount(parseCount("--batch", f.batch, 1), total, true);
  const batches = [...(canary.length ? [canary] : []), ...(rest.length ? chunks(rest, Math.max(1, size)) : [])];
  // With --canary or --batch, any release failure halts unless told otherwise; a plain update tries every host.
  const staged = f.canary !== undefined || f.batch !== undefined;
  const limits: Limits = {
    failures: f.maxFailures !== undefined ? resolveCount(parseCount("--max-failures", f.maxFailures, 0), total) : staged ? 0 : null,
    unreachable: f.maxUnreachable !== undefined ? resolveCount(parseCount("--max-unreachable", f.maxUnreachable, 0), total) : null,
  };
  return {
    batches,
    canaries: canary.length > 0,
    settings: {
      canary: f.canary ?? null,
      batch: f.batch ?? null,
      max_failures: f.maxFailures ?? null,
      max_unreachable: f.maxUnreachable ?? null,
      pause: f.pause ?? null,
      pause_ms: f.pause === undefined ? 0 : parseDuration("--pause", f.pause),
      limits,
      halt_rollback: Boolean(f.haltRollback),
      include_self: Boolean(f.includeSelf),
      full: Boolean(f.full),
      allow_downgrade: Boolean(f.allowDowngrade),
      concurrency: f.concurrency,
    },
  };
}
