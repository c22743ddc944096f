/**
 * The one journalled install, for both release sets — the agent's (/update)
 * and the updater's own (/update-self): journal → stage → target → verify → install
 * check → preflight → commit → same release? → journal "switched" → mark
 * unknown. What follows the switch is each caller's (AgentOps: flip,
 * restart, probe, revert; SelfOps: re-exec, confirm). And the one recovery
 * of an install a crash interrupted.
 */
import type { SwitchResponse } from "../../protocol/updater.ts";
import { buildInfo } from "../../lib/build-info.ts";
import { commit, installCheck } from "./install.ts";
import { type Journal, OpJournal, readJournal } from "./journal.ts";
import type { ReleaseSet } from "./release-set.ts";
import type { Staged } from "./staging.ts";
import { targetGate } from "./target-gate.ts";

export interface InstallPlan {
  op: "update" | "update-self";
  set: ReleaseSet;
  /** The upload (full or delta) turned into a verified staging dir. */
  stage: () => Promise<Staged>;
  /** The target a release must be built for (target-gate.ts); this executable's own by default. */
  target?: string;
  /** Checks before any of the release's code runs; answers who signed it (trust-gate.ts). */
  verify?: (s: Staged) => { signer: string | null } | Promise<{ signer: string | null }>;
  /** The last check before commit, after the install check (a self-update's preflight). */
  preflight?: (s: Staged) => Promise<void>;
  /** After commit: the answer when nothing needs to switch, or null. */
  unchanged: (s: Staged, from: string | null, prev: string | null) => Promise<SwitchResponse | null>;
  /** The pid recorded with the journal (the updater's own, for a self-update). */
  pid?: number | null;
  now?: () => Date;
}

export type Installed =
  | { switched: false; response: SwitchResponse }
  | { switched: true; staged: Staged; journal: OpJournal; ms: { stage: number; check: number } };

export async function install(p: InstallPlan): Promise<Installed> {
  const from = p.set.current();
  const journal = new OpJournal(p.set.paths, p.op, from, p.set.previous(), p.now?.());
  journal.step("staging", null, p.pid ?? null);
  const t0 = performance.now();
  try {
    const staged = await p.stage();
    const t1 = performance.now();
    let signer: string | null = null;
    try {
      targetGate(p.target ?? buildInfo().target)(staged);
      signer = (await p.verify?.(staged))?.signer ?? null;
      await installCheck(staged);
      await p.preflight?.(staged);
    } catch (e) {
      p.set.removeStaging();
      throw e;
    }
    const id = staged.manifest.id;
    // Into releases/<id> (nothing points at it yet: a crash here only
    // leaves one more kept release); a copy already kept is swapped for it.
    commit(p.set.paths, staged);
    p.set.keep(staged.manifest, staged);
    const response = await p.unchanged(staged, from, journal.prev);
    if (response) {
      journal.clear();
      return { switched: false, response };
    }
    journal.step("switched", id, p.pid ?? null);
    p.set.mark(id, "unknown", undefined, signer);
    return { switched: true, staged, journal, ms: { stage: Math.round(t1 - t0), check: Math.round(performance.now() - t1) } };
  } catch (e) {
    journal.clear();
    throw e;
  }
}

export type Recovered =
  | { outcome: "none" }
  | { outcome: "damaged-journal"; aside: string }
  | { outcome: "discarded"; journal: Journal }
  | { outcome: "undone"; journal: Journal }
  | { outcome: "confirmed"; journal: Journal };

/**
 * On start: staging dirs removed; an install interrupted before its switch
 * discarded; one switched but not confirmed undone (current and previous
 * restored, its target marked failed) — unless `confirmed` says this process
 * is its outcome, which is then made final (current on it, marked good).
 */
export function recoverInstall(set: ReleaseSet, confirmed: (j: Journal) => boolean): Recovered {
  set.removeStaging();
  const { journal: j, damaged } = readJournal(set.paths);
  if (damaged) return { outcome: "damaged-journal", aside: damaged };
  if (!j) return { outcome: "none" };
  const clear = () => new OpJournal(set.paths, j.op, j.from, j.prev).clear();
  if (j.target && confirmed(j)) {
    if (set.current() !== j.target) set.flip(j.target, j.from);
    set.mark(j.target, "good");
    clear();
    return { outcome: "confirmed", journal: j };
  }
  if (j.phase === "staging") {
    clear();
    return { outcome: "discarded", journal: j };
  }
  set.flip(j.from, j.prev);
  if (j.op !== "rollback" && j.target && j.target !== j.from) set.mark(j.target, "failed");
  clear();
  return { outcome: "undone", journal: j };
}
