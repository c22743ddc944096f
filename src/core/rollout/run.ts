/**
 * Starting and resuming rollouts: the record created with its release kept
 * in the cache, the engine wired to the real push (push.ts), history rows and
 * rollback (swarm/rollback.ts), and the cached release dropped once the
 * rollout is done or aborted.
 */
import { os } from "../../lib/os-user.ts";
import type { DeltaPlanner } from "../delta-planner.ts";
import { ensureMasterIdentity } from "../identity.ts";
import { type Host, type Push, Registry } from "../registry.ts";
import type { PushRelease } from "../push-release.ts";
import { type Lease, Leases, leasedDetail } from "../registry-leases.ts";
import { describe, type HostResult, type Progress, pushHost } from "../swarm/push.ts";
import { cachedOthers, keepOthers, missingTargetRow, perTarget, refreshTarget, TargetReleases } from "../targets.ts";
import { rollback } from "../swarm/rollback.ts";
import { identityUpkeep } from "../swarm/upkeep.ts";
import { runRollout } from "./engine.ts";
import type { RolloutEvent } from "./events.ts";
import { claimForResume, masterOwner, newRolloutId } from "./lifecycle.ts";
import type { Plan } from "./plan.ts";
import { cachedRelease, dropRelease, fetchSharedRelease, keepRelease, sharedKey } from "./kept-release.ts";
import { openRolloutStore, type ReleaseInfo, type Rollout, type RolloutStore } from "./store.ts";

export interface RunOptions {
  /** Stop starting hosts (first Ctrl-C). */
  stop?: AbortSignal;
  /** Abort the hosts in flight (second Ctrl-C). */
  abort?: AbortSignal;
  onEvent?: (e: RolloutEvent) => void;
  onProgress?: (p: Progress) => void;
}

/** The registry's history rows for one finished host (its agent, and its updater with --include-self). */
function history(r: HostResult, release: ReleaseInfo, rollout: string): Push[] {
  const at = new Date().toISOString();
  const base = { host: r.host, release_id: r.release_id, version: release.version, detail: r.detail, operator: os.operator(), at, duration_ms: r.duration_ms, rollout_id: rollout };
  return [
    { ...base, kind: "update", outcome: r.agent, bytes_sent: r.bytes_sent },
    ...(r.self ? [{ ...base, kind: "update-self" as const, outcome: r.self, bytes_sent: 0 }] : []),
  ];
}

/** The row of a host that left the fleet between a rollout's runs: nothing is sent to it. */
function goneRow(name: string, release: PushRelease): HostResult {
  return {
    host: name, address: "", agent: "error", self: null, detail: `${name} is no longer enrolled (decommissioned?); nothing was sent`,
    release_id: release.manifest.id, transfer: null, self_transfer: null, install: null, signer: null, error_code: "decommissioned", previous: null, identity: null, bytes_sent: 0, duration_ms: 0,
  };
}

/** The row of a host another master holds: nothing is sent to it. */
function leasedRow(name: string, address: string, release: PushRelease, l: Lease): HostResult {
  return { ...goneRow(name, release), address, detail: leasedDetail(l), error_code: "leased" };
}

/**
 * Runs a claimed rollout with its releases (one per target, the recorded one
 * first: core/targets.ts) to the end; drops the cached releases when it is
 * done or aborted.
 */
async function execute(store: RolloutStore, r: Rollout, releases: PushRelease[], o: RunOptions): Promise<Rollout> {
  await ensureMasterIdentity();
  const set = TargetReleases.of(releases);
  const release = set.primary;
  // Per target: a planner from the executable itself (no tarball unless a host needs it whole), and what remembers
  // the release as the base of the next push once a host runs it; none for a tarball taken whole for --full.
  using each = perTarget(set, r.settings.full);
  const remembered = new Set<string>();
  const hosts = await (async () => {
    using reg = new Registry();
    return new Map<string, Host>((await reg.hosts()).filter((h) => !h.decommissioned_at).map((h) => [h.name, h]));
  })();
  // A lease on every host this run may touch, so no other master pushes to it meanwhile (DESIGN §15).
  await using leases = new Leases(r.owner!, r.id);
  if (r.run > 1) await leases.dropLeftBy(r.id);
  const leased = await leases.acquire(r.hosts.filter((h) => h.state === "pending" || h.state === "running").map((h) => h.host));
  const never = new AbortController().signal;
  // Renewal when due and the CRL, on each host the push reaches (swarm/upkeep.ts).
  using upkeep = await identityUpkeep();
  const final = await runRollout(r, {
    store,
    owner: r.owner!,
    stop: o.stop ?? never,
    abort: o.abort ?? never,
    onEvent: o.onEvent,
    onProgress: o.onProgress,
    // The version of the release the host got: its own target's.
    history: (res) => history(res, { ...r.release, version: set.list().find((x) => x.manifest.id === res.release_id)?.manifest.version ?? r.release.version }, r.id),
    async push(name, signal, onProgress) {
      const h = hosts.get(name);
      // Checked again as the host starts: a lease lost meanwhile (heartbeats failing past the timeout) is not pushed through.
      const held = leased.get(name) ?? (await leases.lost(name));
      // Its target as it reports it now (DESIGN §16): its own target's release, or an error row. The /health that
      // told it is the push's own (one request, one handshake).
      const seen = h && !held ? await refreshTarget(h) : null;
      const target = seen?.target ?? null;
      const mine = h && !held ? set.forTarget(target) : null;
      const plan = mine ? each.get(mine.manifest.target)! : null;
      const res = held
        ? leasedRow(name, h?.address ?? "", release, held)
        : !h
          ? goneRow(name, release)
          : !mine
            ? missingTargetRow(h, target!, set)
            : await pushHost(h, mine, { includeSelf: r.settings.include_self, delta: plan!.delta, onProgress, signer: plan!.signer, allowDowngrade: r.settings.allow_downgrade, signal, upkeep: upkeep.run, health: seen?.health });
      if (mine && plan?.planner && res.agent === "updated" && !remembered.has(mine.manifest.target)) {
        remembered.add(mine.manifest.target);
        rememberRelease(plan.planner, mine);
      }
      onProgress({ host: name, phase: "done", result: res });
      return res;
    },
    async revert(name, previous) {
      try {
        const back = await rollback(name);
        const note = previous && back.release.id !== previous ? ` (it ran ${previous.slice(0, 12)} before this rollout)` : "";
        return { ok: true, detail: `now on ${back.release.version} ${back.release.id.slice(0, 12)}${note}` };
      } catch (e) {
        return { ok: false, detail: describe(e).detail };
      }
    },
  });
  if (final.state === "done" || final.state === "aborted") {
    dropRelease(r.id);
    await store.dropShared(r.id);
  }
  return final;
}

/** Keeps the release's index and files in the master's cache; failing to is a warning, never a failed push. */
function rememberRelease(planner: DeltaPlanner, release: PushRelease): void {
  try {
    planner.remember();
  } catch (e) {
    process.stderr.write(`warning: release ${release.manifest.id.slice(0, 12)} was not kept in the release cache (${(e as Error).message}); the next push from it will ask the worker for its index\n`);
  }
}

export interface StartOptions extends RunOptions {
  plan: Plan;
  /** Its push dir is moved into the rollout's cache. */
  release: PushRelease;
  /** The other targets' releases (core/targets.ts), their push dirs moved beside it. */
  others?: PushRelease[];
  signer: string | null;
}

/** A new rollout: recorded (state running, every host pending), its release kept, then run. */
export async function startRollout(o: StartOptions): Promise<Rollout> {
  const id = newRolloutId();
  const release = keepRelease(o.release, id);
  const others = keepOthers(id, o.others ?? []);
  const at = new Date().toISOString();
  const r: Rollout = {
    id, created_at: at, updated_at: at, operator: os.operator(), state: "running",
    release: { id: release.manifest.id, version: release.manifest.version, size: release.size, source: release.source, signer: o.signer },
    release_file: release.dir, settings: o.plan.settings, batches: o.plan.batches, canaries: o.plan.canaries,
    run: 1, budget_from: 1, owner: masterOwner(), halt_reason: null,
    hosts: o.plan.batches.flatMap((b, batch) => b.map((host) => ({ host, batch, state: "pending" as const, run: null, started_at: null, finished_at: null, result: null, note: null }))),
  };
  await using store = await openRolloutStore();
  try {
    await store.create(r);
    // A registry other masters share keeps the release too, so any of them can resume: as its tarball, packed only then.
    await store.keepShared(sharedKey(r.id), release.manifest.id, () => release.tarball());
    for (const other of others) await store.keepShared(sharedKey(r.id, other.manifest.target), other.manifest.id, () => other.tarball());
  } catch (e) {
    dropRelease(id);
    throw e;
  }
  return await execute(store, r, [release, ...others], o);
}

/** `swarm rollout resume ID`: the pending hosts, with the same release and settings. */
export async function resumeRollout(id: string, o: RunOptions & { retryUnreachable?: boolean }): Promise<Rollout> {
  await using store = await openRolloutStore();
  let releases: PushRelease[] = [];
  const r = await claimForResume(store, id, masterOwner(), {
    retryUnreachable: o.retryUnreachable,
    check: async (peek) => {
      // Started on another master sharing the registry: its release comes from the registry into this cache.
      await fetchSharedRelease(store, peek);
      releases = [await cachedRelease(peek), ...(await cachedOthers(peek.id))];
    },
  });
  return await execute(store, r, releases, o);
}
