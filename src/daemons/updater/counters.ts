/**
 * The updater's counters for /metrics — updates by slot and outcome,
 * rollbacks, update durations, bytes received, agent restarts — kept in
 * updater/metrics.json and rewritten after each event, so they survive
 * restarts and self-updates (the file is outside every release). Not
 * fsynced: a power cut may lose the last few counts, never the operation.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import type { Slot } from "../../protocol/updater.ts";
import { writeFileAtomic } from "../../lib/atomic.ts";
import type { AgentControl } from "./ops.ts";

/** Upper bounds (seconds) of the update duration histogram: a delta takes ~1 s, a full push over a slow link minutes. */
export const DURATION_BUCKETS = [0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300] as const;

export const OUTCOMES = ["updated", "unchanged", "rolled_back", "refused", "failed"] as const;
export type Outcome = (typeof OUTCOMES)[number];
export const TRIGGERS = ["probe", "operator"] as const;
export type Trigger = (typeof TRIGGERS)[number];

const n = z.number().int().nonnegative();
const Histogram = z.object({ counts: z.array(n).length(DURATION_BUCKETS.length), sum: z.number().nonnegative(), count: n });
type Histogram = z.infer<typeof Histogram>;
const Data = z.object({
  format: z.literal(1),
  /** "<slot> <outcome>" → count. */
  updates: z.record(z.string(), n),
  rollbacks: z.record(z.string(), n),
  durations: z.record(z.string(), Histogram),
  bytes_received: n,
  agent_restarts: n,
});
export type CounterData = z.infer<typeof Data>;

const empty = (): CounterData => ({ format: 1, updates: {}, rollbacks: {}, durations: {}, bytes_received: 0, agent_restarts: 0 });

/** What an operation's result or error says about its outcome, by the error code and status the client sees. */
export function outcomeOf(result: { status?: string } | null, error: { code?: string; status?: number } | null): Outcome {
  if (!error) return result?.status === "unchanged" ? "unchanged" : "updated";
  if (error.code === "rolled_back") return "rolled_back";
  // Refusals of what was sent (4xx, 507) against failures of the install itself (5xx).
  const refused = new Set(["bad_archive", "bad_request", "too_large", "delta_unavailable", "not_found", "insufficient_storage", "unsigned", "bad_signature", "untrusted_signer", "below_floor", "downgrade"]);
  return error.code && refused.has(error.code) ? "refused" : "failed";
}

export class Counters {
  private data: CounterData;

  constructor(
    private file: string,
    log?: { warn: (message: string) => void },
  ) {
    this.data = empty();
    try {
      this.data = Data.parse(JSON.parse(readFileSync(this.file, "utf8")));
    } catch (e) {
      // Missing is a first start; anything else is said once, and counting starts again from zero.
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") log?.warn(`${this.file} is unreadable; metrics counters start from zero`);
    }
  }

  get(): Readonly<CounterData> {
    return this.data;
  }

  /** One /update (slot agent) or /update-self (slot updater) that ran, however it ended. */
  update(slot: Slot, outcome: Outcome, seconds: number, rolledBack = false): void {
    const key = `${slot} ${outcome}`;
    this.data.updates[key] = (this.data.updates[key] ?? 0) + 1;
    const h: Histogram = this.data.durations[slot] ?? { counts: DURATION_BUCKETS.map(() => 0), sum: 0, count: 0 };
    const i = DURATION_BUCKETS.findIndex((b) => seconds <= b);
    if (i >= 0) h.counts[i]! += 1;
    h.sum += seconds;
    h.count += 1;
    this.data.durations[slot] = h;
    if (rolledBack) this.data.rollbacks.probe = (this.data.rollbacks.probe ?? 0) + 1;
    this.save();
  }

  /** A /rollback that switched back to the previous release. */
  operatorRollback(): void {
    this.data.rollbacks.operator = (this.data.rollbacks.operator ?? 0) + 1;
    this.save();
  }

  /** Upload bytes as they arrive; saved with the operation that read them. */
  received(bytes: number): void {
    this.data.bytes_received += bytes;
  }

  agentRestarted(): void {
    this.data.agent_restarts += 1;
    this.save();
  }

  private save(): void {
    try {
      writeFileAtomic(this.file, `${JSON.stringify(this.data)}\n`, 0o600, { durable: false });
    } catch {
      // A full disk must not fail an operation over its statistics.
    }
  }
}

/** `sup`, counting each agent restart it makes. */
export function countingRestarts(sup: AgentControl, c: Counters): AgentControl {
  return {
    agents: () => sup.agents(),
    stop: () => sup.stop(),
    killUnconfirmed: (pid, start) => sup.killUnconfirmed(pid, start),
    logSince: (offset) => sup.logSince(offset),
    restart: async () => {
      c.agentRestarted();
      return sup.restart();
    },
  };
}
