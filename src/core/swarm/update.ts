/**
 * `swarm update`: check the flags, select the hosts, plan the rollout, learn
 * the hosts' targets, get one release per target (core/targets.ts), then run
 * it as a rollout (core/rollout: canaries,
 * batches, budget; push.ts does one host), recorded host by host.
 */
import { existsSync } from "node:fs";
import { loadSigner } from "../release-sign.ts";
import { DecnetError, usageError } from "../../lib/errors.ts";
import { homePaths } from "../../lib/paths.ts";
import { type Host, Registry } from "../registry.ts";
import type { PushRelease } from "../push-release.ts";
import { learnTargets, obtainReleases } from "../targets.ts";
import type { RolloutEvent } from "../rollout/events.ts";
import { view, type RolloutView } from "../rollout/manage.ts";
import { checkFlags, type Plan, planRollout, type RolloutFlags } from "../rollout/plan.ts";
import { startRollout } from "../rollout/run.ts";
import { selectHosts } from "./hosts.ts";
import type { HostResult, Progress } from "./push.ts";

export type { HostResult, Outcome, Progress, Transfer } from "./push.ts";

export const DEFAULT_CONCURRENCY = 8;

export interface UpdateOptions {
  hosts: string[];
  all: boolean;
  /** After a healthy agent update, replace the updater too (per host). */
  includeSelf?: boolean;
  /** Always send the whole release, never a delta. */
  full?: boolean;
  /** One per target (each manifest names its target); none: build the working tree per target. */
  artifact?: string | string[];
  self?: boolean;
  dryRun?: boolean;
  concurrency?: number;
  cwd?: string;
  /** A signed release older than what a host runs may go in (never below its floor). */
  allowDowngrade?: boolean;
  /** Rollout flags (DESIGN §12), as given: `N`, `P%`, `HOST,...`, a duration. */
  canary?: string;
  batch?: string;
  maxFailures?: string;
  maxUnreachable?: string;
  pause?: string;
  haltRollback?: boolean;
  /** Stop starting hosts (first Ctrl-C); abort those in flight (second). */
  stop?: AbortSignal;
  abort?: AbortSignal;
  /** Told which release was chosen (and who signed it), before any network. */
  onRelease?: (r: PushRelease, signer: string | null) => void;
  onProgress?: (p: Progress) => void;
  onEvent?: (e: RolloutEvent) => void;
}

export interface ReleaseSummary {
  id: string;
  version: string;
  size: number;
  source: string;
  signer: string | null;
}

export interface UpdateReport {
  /** The rollout's recorded release: the first target's. */
  release: ReleaseSummary;
  /** One per target (DESIGN §16), with the hosts that get it; hosts whose target has none are in `missing`. */
  releases: Array<ReleaseSummary & { target: string; hosts: string[] }>;
  /** Hosts whose target this push has no release for (each gets an error row), by target. */
  missing: Array<{ target: string; hosts: string[] }>;
  /** The rows of the hosts that were pushed to, in batch order. */
  hosts: HostResult[];
  dryRun: boolean;
  targets: Array<{ host: string; address: string }>;
  plan: Plan;
  /** The rollout as recorded at its end; null for a dry run. */
  rollout: RolloutView | null;
}

/** Runs `fn` over `items` with at most `n` at once, keeping input order in the result. */
export async function mapLimit<T, U>(items: T[], n: number, fn: (t: T) => Promise<U>): Promise<U[]> {
  const out = new Array<U>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  });
  await Promise.all(lanes);
  return out;
}

export async function update(o: UpdateOptions): Promise<UpdateReport> {
  const concurrency = o.concurrency ?? DEFAULT_CONCURRENCY;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw usageError("--concurrency takes a whole number ≥ 1");
  const flags: RolloutFlags = { canary: o.canary, batch: o.batch, maxFailures: o.maxFailures, maxUnreachable: o.maxUnreachable, pause: o.pause, haltRollback: o.haltRollback, includeSelf: o.includeSelf, full: o.full, allowDowngrade: o.allowDowngrade, concurrency };
  checkFlags(flags);
  let targets: Host[];
  let plan: Plan;
  {
    using reg = new Registry();
    targets = await selectHosts(reg, o.hosts, o.all);
    if (targets.length === 0) throw new DecnetError("failed", "no hosts to update (all decommissioned?)", { hint: "see `decnet swarm list`" });
    const known = new Set((await reg.hosts()).map((h) => h.name));
    plan = planRollout(targets.map((h) => h.name), flags, (n) => known.has(n));
  }
  // The targets among the hosts (DESIGN §16): the registry's, or asked on first contact.
  const hostTargets = await learnTargets(targets);
  // With a signing key on the master, what it builds or packs is signed (DESIGN §11).
  const signing = existsSync(homePaths().trust.signingKey) ? loadSigner() : null;
  const artifacts = o.artifact === undefined ? [] : Array.isArray(o.artifact) ? o.artifact : [o.artifact];
  const set = await obtainReleases({ artifacts, self: o.self, targets: [...new Set([...hostTargets.values()].filter((t): t is string => t !== null))], cwd: o.cwd, sign: signing?.sign, full: o.full });
  try {
    const releases: UpdateReport["releases"] = [];
    const missing = new Map<string, string[]>();
    for (const h of targets) {
      const t = hostTargets.get(h.name) ?? null;
      if (!set.forTarget(t)) missing.set(t!, [...(missing.get(t!) ?? []), h.name]);
    }
    for (const r of set.list()) {
      const signer = r.signer;
      o.onRelease?.(r, signer);
      const hosts = targets.filter((h) => set.forTarget(hostTargets.get(h.name) ?? null) === r).map((h) => h.name);
      releases.push({ target: r.manifest.target, id: r.manifest.id, version: r.manifest.version, size: r.size, source: r.source, signer, hosts });
    }
    const { target: _, hosts: __, ...summary } = releases[0]!;
    const list = targets.map((h) => ({ host: h.name, address: h.address }));
    const gaps = [...missing].map(([target, hosts]) => ({ target, hosts }));
    if (o.dryRun) return { release: summary, releases, missing: gaps, hosts: [], dryRun: true, targets: list, plan, rollout: null };
    const [first, ...others] = set.list();
    const final = await startRollout({ plan, release: first!, others, signer: summary.signer, stop: o.stop, abort: o.abort, onEvent: o.onEvent, onProgress: o.onProgress });
    return { release: summary, releases, missing: gaps, hosts: final.hosts.flatMap((h) => (h.result ? [h.result] : [])), dryRun: false, targets: list, plan, rollout: view(final) };
  } finally {
    // Moved into the rollout's cache when it started; still here only after a dry run or a failure.
    for (const r of set.list()) r.drop();
  }
}
