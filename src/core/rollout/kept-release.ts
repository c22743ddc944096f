/**
 * A rollout's release in the master's cache (~/.decnet/cache/rollouts/<id>/,
 * the push dir of core/push-release.ts moved there): kept from the start
 * until the rollout is done or aborted, so a resume sends the very same
 * bytes, checked against the id the rollout started with.
 */
import { existsSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import { DecnetError } from "../../lib/errors.ts";
import { ensurePrivateDir, homePaths } from "../../lib/paths.ts";
import { openPushRelease, type PushRelease, releaseFromTarball } from "../push-release.ts";
import { TARGETS } from "../../protocol/target.ts";
import type { Rollout, RolloutStore } from "./store.ts";

/** Moves the push's dir to where the rollout keeps it. */
export function keepRelease(release: PushRelease, id: string): PushRelease {
  const dir = homePaths().rolloutRelease(id);
  ensurePrivateDir(dirname(dir));
  return release.moveTo(dir);
}

/**
 * The cached release of `r`, checked to be the one it started with. Always
 * this master's own cache path for the id: the registry says whether one is
 * kept, never where to read or delete.
 */
export async function cachedRelease(r: Rollout): Promise<PushRelease> {
  const dir = homePaths().rolloutRelease(r.id);
  const missing = () =>
    new DecnetError("failed", `rollout ${r.id}: its release ${r.release.version} ${r.release.id.slice(0, 12)} is not in this master's cache (${dir})`, {
      hint: "start a new rollout with `decnet swarm update`",
    });
  if (!r.release_file) throw missing();
  const release = openPushRelease(dir, r.release.source);
  if (!release) throw missing();
  if (release.manifest.id !== r.release.id) {
    throw new DecnetError("failed", `rollout ${r.id}: the cached release ${dir} is ${release.manifest.id.slice(0, 12)}, not the ${r.release.id.slice(0, 12)} it started with`, {
      hint: "start a new rollout with `decnet swarm update`",
    });
  }
  return release;
}

/**
 * The key a shared registry keeps a rollout's release under: its id, or
 * `ID.TARGET` for another target's release of a mixed fleet (DESIGN §16).
 */
export function sharedKey(id: string, target?: string): string {
  return target ? `${id}.${target}` : id;
}

/**
 * A rollout started on another master sharing the registry: its release
 * tarballs from the registry (the recorded one, and any other target's),
 * each made this master's kept dir (unpacked unless the rollout is --full).
 * Nothing for a release this master already keeps or the registry does not.
 */
export async function fetchSharedRelease(store: Pick<RolloutStore, "fetchShared">, r: Rollout): Promise<void> {
  if (!r.release_file) return;
  const wanted: Array<{ dir: string; key: string; target?: string }> = [
    { dir: homePaths().rolloutRelease(r.id), key: sharedKey(r.id) },
    ...TARGETS.map((t) => ({ dir: keptTargetDir(r.id, t), key: sharedKey(r.id, t), target: t })),
  ];
  for (const w of wanted) {
    if (existsSync(w.dir)) continue;
    ensurePrivateDir(dirname(w.dir));
    const tmp = `${w.dir}.shared.tar.gz`;
    try {
      if (!(await store.fetchShared(w.key, tmp))) continue;
      const release = await releaseFromTarball(tmp, r.release.source, !r.settings.full);
      // The recorded release is checked against its id by cachedRelease; another target's must be that target's.
      if (w.target && release.manifest.target !== w.target) {
        release.drop();
        throw new DecnetError("failed", `rollout ${r.id}: the registry's ${w.target} release is a ${release.manifest.target} release`, { hint: "start a new rollout with `decnet swarm update`" });
      }
      release.moveTo(w.dir);
    } finally {
      rmSync(tmp, { force: true });
    }
  }
}

/** Where a rollout keeps another target's release (its push dir), beside its recorded one (core/targets.ts, DESIGN §16). */
export function keptTargetDir(id: string, target: string): string {
  return `${homePaths().rolloutRelease(id)}.${target}`;
}

/** Drops a rollout's cached release, the other targets', and any shared tarball left mid-fetch (done or aborted). */
export function dropRelease(id: string): void {
  for (const dir of [homePaths().rolloutRelease(id), ...TARGETS.map((t) => keptTargetDir(id, t))]) {
    rmSync(dir, { recursive: true, force: true });
    // A shared tarball a kill -9 left mid-fetch (fetchSharedRelease).
    rmSync(`${dir}.shared.tar.gz`, { force: true });
    rmSync(`${dir}.shared.tar.gz.part`, { force: true });
  }
}
