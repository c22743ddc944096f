/**
 * A rollout's release in the master's cache (~/.decnet/cache/rollouts/<id>.tar.gz):
 * kept from the start until the rollout is done or aborted, so a resume sends
 * the very same bytes, checked against the id the rollout started with.
 */
import { copyFileSync, existsSync, renameSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import { DecnetError } from "../../lib/errors.ts";
import { ensurePrivateDir, homePaths } from "../../lib/paths.ts";
import { readReleaseManifest, type Release } from "../release.ts";
import { TARGETS } from "../../protocol/target.ts";
import type { Rollout } from "./store.ts";

/**
 * Puts the release where the rollout keeps it: moved when the master made it
 * (`temp`), copied when it is the operator's file (which may change or go).
 */
export function keepRelease(release: Release, id: string, temp: boolean): Release {
  const file = homePaths().rolloutRelease(id);
  ensurePrivateDir(dirname(file));
  if (temp) renameSync(release.file, file);
  else copyFileSync(release.file, file);
  return { ...release, file };
}

/**
 * The cached release of `r`, checked to be the one it started with. Always
 * this master's own cache path for the id: the registry says whether one is
 * kept, never where to read or delete.
 */
export async function cachedRelease(r: Rollout): Promise<Release> {
  const file = homePaths().rolloutRelease(r.id);
  if (!r.release_file || !existsSync(file)) {
    throw new DecnetError("failed", `rollout ${r.id}: its release ${r.release.version} ${r.release.id.slice(0, 12)} is not in this master's cache (${file})`, {
      hint: "start a new rollout with `decnet swarm update`",
    });
  }
  const manifest = await readReleaseManifest(file);
  if (manifest.id !== r.release.id) {
    throw new DecnetError("failed", `rollout ${r.id}: the cached release ${file} is ${manifest.id.slice(0, 12)}, not the ${r.release.id.slice(0, 12)} it started with`, {
      hint: "start a new rollout with `decnet swarm update`",
    });
  }
  return { file, manifest, size: r.release.size, source: r.release.source };
}

/** Where a rollout keeps another target's release, beside its recorded one (core/targets.ts, DESIGN §16). */
export function keptTargetFile(id: string, target: string): string {
  return homePaths().rolloutRelease(id).replace(/\.tar\.gz$/, `.${target}.tar.gz`);
}

/** Drops a rollout's cached release, and the other targets' (done or aborted). */
export function dropRelease(id: string): void {
  rmSync(homePaths().rolloutRelease(id), { force: true });
  for (const t of TARGETS) rmSync(keptTargetFile(id, t), { force: true });
}
