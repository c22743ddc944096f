/**
 * state.json: the operation in flight, rewritten atomically before each step,
 * so that a restarted updater can finish or undo what a crash interrupted.
 */
import { readFileSync, unlinkSync } from "node:fs";
import { z } from "zod";
import { writeFileAtomic } from "../../lib/atomic.ts";
import type { SlotPaths } from "../../lib/paths.ts";

export const Journal = z.object({
  op: z.enum(["update", "rollback", "update-self"]),
  /** staging: nothing outside staging changed; switched: current may point at target; probing: agent `pid` runs target. */
  phase: z.enum(["staging", "switched", "probing", "reverting"]),
  /** current and previous before the operation: what an undo restores. */
  from: z.string().nullable(),
  prev: z.string().nullable(),
  target: z.string().nullable(),
  pid: z.number().int().nullable(),
  started_at: z.string(),
});
export type Journal = z.infer<typeof Journal>;

export function readJournal(slots: SlotPaths): Journal | null {
  let text: string;
  try {
    text = readFileSync(slots.stateJson, "utf8");
  } catch {
    return null;
  }
  const r = Journal.safeParse(JSON.parse(text));
  // An unreadable journal cannot be trusted to undo anything; treat it as a
  // crash mid-write of the first step, which changed nothing yet.
  return r.success ? r.data : null;
}

export function writeJournal(slots: SlotPaths, j: Journal): void {
  // Forced to disk only before steps a power cut could leave half done (the
  // flips). "staging" needs none (start-up removes staging dirs anyway), nor
  // "probing" (its pid means nothing after a power cut; "switched" is on disk).
  const durable = j.phase !== "staging" && j.phase !== "probing";
  writeFileAtomic(slots.stateJson, `${JSON.stringify(j)}\n`, 0o600, { durable });
}

export function clearJournal(slots: SlotPaths): void {
  try { unlinkSync(slots.stateJson); } catch {}
}
