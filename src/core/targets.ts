/**
 * Mixed fleets (DESIGN §16): which release each host gets. A host's target is
 * what its updater's /health reports — learned on first contact, refreshed
 * on every push, kept in the registry. A push carries one release per target
 * (built per target, or one `--artifact` per target); a host whose target has
 * none gets an error row that names it, and nothing is sent to it. Each
 * target's release keeps its own delta planner and signer, and a rollout
 * keeps every target's push dir in its cache, so a resume sends the same bytes.
 */
import { dirname } from "node:path";
import { updaterHealthWithin } from "../client/updater.ts";
import { DecnetError, usageError } from "../lib/errors.ts";
import { ensurePrivateDir } from "../lib/paths.ts";
import { timeouts } from "../lib/timeouts.ts";
import { isTarget, type Target, TARGETS } from "../protocol/target.ts";
import type { UpdaterHealth } from "../protocol/updater.ts";
import { DeltaPlanner } from "./delta-planner.ts";
import { openPushRelease, type PushRelease } from "./push-release.ts";
import { type Host, Registry } from "./registry.ts";
import { obtainRelease, type PackOptions } from "./release.ts";
import { keptTargetDir } from "./rollout/kept-release.ts";
import type { HostResult } from "./swarm/push.ts";

type Release = PushRelease;

/**
 * What an updater that does not report a target runs: every decnet before
 * issue 21 shipped linux-x64 only. Also the pick for a host never reached
 * (its push then fails as unreachable, not for want of a release).
 */
export const DEFAULT_TARGET: Target = "linux-x64";

/** What a target's release needs to be told apart: its manifest and where it came from. */
type Named = Pick<Release, "manifest" | "source">;

/** A push's releases, one per target; the first is the rollout's recorded release. */
export class TargetReleases<R extends Named = Release> {
  private constructor(private readonly byTarget: Map<string, R>) {}

  static of<R extends Named>(list: R[]): TargetReleases<R> {
    const m = new Map<string, R>();
    for (const r of list) {
      const t = r.manifest.target;
      const had = m.get(t);
      if (had) throw usageError(`two releases for ${t}: ${had.source} and ${r.source}`, "give --artifact once per target");
      m.set(t, r);
    }
    if (m.size === 0) throw new DecnetError("failed", "no release to push");
    return new TargetReleases(m);
  }

  get primary(): R {
    return this.list()[0]!;
  }

  list(): R[] {
    return [...this.byTarget.values()];
  }

  /** The release for a host of `target` (null: not known, so the default's, else the primary). */
  forTarget(target: string | null): R | null {
    if (target === null) return this.byTarget.get(DEFAULT_TARGET) ?? this.primary;
    return this.byTarget.get(target) ?? null;
  }
}

/** A host's target as its updater reports it now, or null (unreachable, or an updater from before targets). */
async function askTarget(h: Host, timeoutMs: number): Promise<{ target: string; health: UpdaterHealth } | null> {
  try {
    const health = await updaterHealthWithin({ host: h.name, address: h.address, port: h.updater_port }, timeoutMs);
    return { target: health.target ?? DEFAULT_TARGET, health };
  } catch {
    return null;
  }
}

async function record(name: string, target: string): Promise<void> {
  using reg = new Registry();
  await reg.setTarget(name, target);
}

/**
 * Each host's target: the registry's, else asked now (first contact, all at
 * once, a short timeout) and recorded. Null for a host not reached.
 */
export async function learnTargets(hosts: Host[]): Promise<Map<string, string | null>> {
  const out = new Map<string, string | null>();
  await Promise.all(hosts.map(async (h) => {
    if (h.target) return out.set(h.name, h.target);
    const t = (await askTarget(h, timeouts.status()))?.target ?? null;
    if (t) await record(h.name, t);
    out.set(h.name, t);
  }));
  return out;
}

/**
 * On a push: the target the host reports now (recorded when it changed), else
 * the registry's; and the /health it answered, which the push then uses
 * rather than asking again (one TLS handshake fewer on the wire). A short
 * timeout: a host that does not answer fails its push as unreachable on its own.
 */
export async function refreshTarget(h: Host): Promise<{ target: string | null; health: UpdaterHealth | null }> {
  const seen = await askTarget(h, timeouts.status());
  if (seen && seen.target !== h.target) await record(h.name, seen.target);
  return { target: seen?.target ?? h.target ?? null, health: seen?.health ?? null };
}

/**
 * The releases for `targets`: each `--artifact` as given (its manifest names
 * its target; an executable's ELF header does), `--self` (this executable's
 * target only), or by default a build of the working tree per target.
 */
export async function obtainReleases(o: { artifacts: string[]; self?: boolean; targets: string[]; cwd?: string; sign?: PackOptions["sign"]; full?: boolean }): Promise<TargetReleases> {
  if (o.artifacts.length && o.self) throw usageError("give --artifact or --self, not both");
  const list: Release[] = [];
  try {
    if (o.artifacts.length) for (const a of o.artifacts) list.push(await obtainRelease({ artifact: a, cwd: o.cwd, sign: o.sign, full: o.full }));
    else if (o.self) list.push(await obtainRelease({ self: true, cwd: o.cwd, sign: o.sign }));
    else {
      const wanted = TARGETS.filter((t) => o.targets.includes(t));
      // Built one after the other: each build takes every core.
      for (const target of wanted.length ? wanted : [DEFAULT_TARGET]) list.push(await obtainRelease({ target, cwd: o.cwd, sign: o.sign }));
    }
    return TargetReleases.of(list);
  } catch (e) {
    // The push dirs made so far are this push's own: nothing else will drop them.
    for (const r of list) r.drop();
    throw e;
  }
}

export interface TargetPlan {
  /** The delta planner (null with --full); also what remembers the release once a host runs it. */
  delta: DeltaPlanner | null;
  planner: DeltaPlanner | null;
  signer: string | null;
}

/**
 * Per target, what pushes need once: a delta planner from the release's own
 * files (none for a tarball taken whole for --full, never unpacked; not used
 * for deltas with --full) and who signed it. Dispose them at the end.
 */
export function perTarget(set: TargetReleases, full: boolean): Map<string, TargetPlan> & Disposable {
  const out = new Map<string, TargetPlan>() as Map<string, TargetPlan> & Disposable;
  out[Symbol.dispose] = () => {
    for (const p of out.values()) p.planner?.[Symbol.dispose]();
  };
  for (const r of set.list()) {
    const planner = r.unpacked ? new DeltaPlanner(r.manifest, r.local, r.hashed, undefined, r.signature) : null;
    out.set(r.manifest.target, { delta: full ? null : planner, planner, signer: r.signer });
  }
  return out;
}

/** The row of a host whose target this push has no release for: nothing sent. */
export function missingTargetRow(h: Host, target: string, set: TargetReleases<Named>): HostResult {
  const has = set.list().map((r) => r.manifest.target).join(", ");
  const how = isTarget(target) ? `add --artifact with a ${target} release (decnet release build --target ${target}), or leave out --artifact/--self to build one per target` : `decnet builds ${TARGETS.join(" and ")} only`;
  return {
    host: h.name, address: h.address, agent: "error", self: null,
    detail: `${h.name} runs ${target} and this push has no ${target} release (it has ${has}); nothing was sent — ${how}`,
    release_id: "", transfer: null, self_transfer: null, install: null, signer: null, error_code: "no_release_for_target", previous: null, identity: null, bytes_sent: 0, duration_ms: 0,
  };
}

/** Keeps the releases other than the recorded one: their push dirs moved into the rollout's cache. */
export function keepOthers(id: string, others: Release[]): Release[] {
  return others.map((r) => {
    const dir = keptTargetDir(id, r.manifest.target);
    ensurePrivateDir(dirname(dir));
    return r.moveTo(dir);
  });
}

/** The other targets' releases a rollout kept, each checked to be a release for the target its name says. */
export async function cachedOthers(id: string): Promise<Release[]> {
  const out: Release[] = [];
  for (const target of TARGETS) {
    const dir = keptTargetDir(id, target);
    const r = openPushRelease(dir, `kept for rollout ${id}`);
    if (!r) continue;
    if (r.manifest.target !== target) throw new DecnetError("failed", `rollout ${id}: the cached ${dir} is a ${r.manifest.target} release`, { hint: "start a new rollout with `decnet swarm update`" });
    out.push(r);
  }
  return out;
}
