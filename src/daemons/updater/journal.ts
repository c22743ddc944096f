/**
 * state.json: the operation in flight, rewritten atomically before each step,
 * so that a restarted updater can finish or undo what a crash interrupted.
 */
import { readFileSync, renameSync, unlinkSync } from "node:fs";
import { z } from "zod";
import { ReleaseId } from "../../protocol/manifest.ts";
import { writeFileAtomic } from "../../lib/atomic.ts";
import type { SlotPaths } from "../../lib/paths.ts";
import { startTime } from "../../lib/procfs.ts";

export const Journal = z.object({
  op: z.enum(["update", "rollback", "update-self"]),
  /** staging: nothing outside staging changed; switched: current may point at target; probing: agent `pid` runs target. */
  phase: z.enum(["staging", "switched", "probing", "reverting"]),
  /** current and previous before the operation: what an undo restores. */
  from: ReleaseId.nullable(),
  prev: ReleaseId.nullable(),
  target: ReleaseId.nullable(),
  pid: z.number().int().nullable(),
  /** With `pid`: the start time that makes it one exact process (journals before it have none). */
  start: z.number().int().nullable().default(null),
  started_at: z.string(),
});
export type Journal = z.output<typeof Journal>;
export type Phase = Journal["phase"];

/**
 * The journal, or null when there is none. One that cannot be read (a power
 * cut mid-write of a step that is not fsynced, a hand edit) is moved aside
 * and reported in `damaged`: it cannot be trusted to undo anything, so the
 * caller recovers as from a crash in the first step, which changed nothing.
 */
export function readJournal(slots: SlotPaths): { journal: Journal | null; damaged?: string } {
  let text: string;
  try {
    text = readFileSync(slots.stateJson, "utf8");
  } catch {
    return { journal: null };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {}
  const r = Journal.safeParse(raw);
  if (r.success) return { journal: r.data };
  const aside = `${slots.stateJson}.damaged-${Date.now()}`;
  try {
    renameSync(slots.stateJson, aside);
  } catch {
    clearJournal(slots);
  }
  return { journal: null, damaged: aside };
}

export function writeJournal(slots: SlotPaths, j: z.input<typeof Journal>): void {
  // Forced to disk only before steps a power cut could leave half done (the
  // flips). "staging" needs none (start-up removes staging dirs anyway), nor
  // "probing" (its pid means nothing after a power cut; "switched" is on disk).
  const durable = j.phase !== "staging" && j.phase !== "probing";
  writeFileAtomic(slots.stateJson, `${JSON.stringify(j)}\n`, 0o600, { durable });
}

export function clearJournal(slots: SlotPaths): void {
  try { unlinkSync(slots.stateJson); } catch {}
}

/** One operation's journal: the same op, start and undo point at every step. */
export class OpJournal {
  private readonly started: string;
  constructor(
    private slots: SlotPaths,
    readonly op: Journal["op"],
    readonly from: string | null,
    readonly prev: string | null,
    now = new Date(),
  ) {
    this.started = now.toISOString();
  }

  step(phase: Phase, target: string | null = null, pid: number | null = null): void {
    const start = pid === null ? null : startTime(pid);
    writeJournal(this.slots, { op: this.op, phase, from: this.from, prev: this.prev, target, pid, start, started_at: this.started });
  }

  clear(): void {
    clearJournal(this.slots);
  }
}
