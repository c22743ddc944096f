/**
 * What `swarm update` and `swarm rollout resume` share: Ctrl-C handling,
 * progress or --events while the rollout runs, then the table or JSON, the
 * summary line that counts each kind, the resume command, and the exit code
 * (0 all updated, 1 otherwise, 130 interrupted).
 */
import type { ArgsDef } from "citty";
import type { RolloutEvent } from "../../core/rollout/events.ts";
import type { RolloutView } from "../../core/rollout/manage.ts";
import type { RolloutHost } from "../../core/rollout/store.ts";
import type { HostResult, Progress } from "../../core/swarm/push.ts";
import { usageError } from "../../lib/errors.ts";
import { err } from "../../lib/stdio.ts";
import { jsonArg } from "../_args.ts";
import { INTERRUPTED_EXIT, rolloutInterrupts } from "../_interrupt.ts";
import { rolloutPrinter, tallyText } from "../_progress.ts";
import { clean, out, paint, type Painted, printJson, printJsonLine, table } from "../_render.ts";

export const rolloutOutputArgs = {
  events: { type: "boolean", description: "Print one NDJSON event per line on stdout as it happens (no table)" },
  ...jsonArg,
} as const satisfies ArgsDef;

/** The rollout part of --json: DESIGN §12's {id, state, batches}, with each host's state and the tallies. */
export function rolloutJson(r: RolloutView) {
  return {
    id: r.id, state: r.state, batches: r.batches, canaries: r.canaries,
    hosts: r.hosts.map(({ host, batch, state, note }) => ({ host, batch, state, ...(note ? { note } : {}) })),
    tally: r.tally, limits: r.settings.limits, halt_reason: r.halt_reason, resume: r.resume,
  };
}

/** A host's cells: what the agent column says, and the detail. */
export function hostCells(h: RolloutHost): [Painted, Painted, string] {
  const res = h.result;
  const self = paint(res?.self ?? "—");
  // Another master's lease: nothing was sent (DESIGN §15).
  if (h.state === "unreachable" && res?.error_code === "leased") return [paint("leased"), self, res.detail];
  switch (h.state) {
    case "pending": return [paint("pending"), self, "not started"];
    case "running": return [paint("pending"), self, "was in flight when its master stopped"];
    case "unreachable": return [paint("skipped"), self, `unreachable: ${res?.detail ?? ""}`];
    case "reverted": return [paint("reverted"), self, h.note ?? ""];
    case "interrupted": return [paint("interrupted"), self, res?.detail ?? ""];
    default: return [paint(res?.agent ?? h.state), self, `${res?.detail ?? ""}${h.note ? `; ${h.note}` : ""}`];
  }
}

/** One row per host of the rollout, in batch order (a batch column when there are several). */
export function hostTable(r: RolloutView, addresses: Map<string, string>): string {
  const multi = r.batches.length > 1;
  return table(["host", "address", ...(multi ? ["batch"] : []), "agent", "self", "detail"], r.hosts.map((h) => {
    const [agent, self, detail] = hostCells(h);
    const batch = r.canaries && h.batch === 0 ? "canary" : String(h.batch + 1);
    return [h.host, h.result?.address || addresses.get(h.host) || "—", ...(multi ? [batch] : []), agent, self, detail];
  }));
}

/** The lines after the table: the summary, what --halt-rollback did, the resume command; and the exit code. */
function summarise(r: RolloutView): void {
  const all = r.state === "done" && r.tally.updated === r.hosts.length;
  if (all) err(`rollout ${r.id} done: ${tallyText(r.tally)}\n`);
  else err(`decnet: rollout ${r.id} ${r.state}${r.halt_reason ? ` (${r.halt_reason})` : ""}: ${tallyText(r.tally)} — see the detail column\n`);
  const reverted = r.hosts.filter((h) => h.state === "reverted").map((h) => h.host);
  const notReverted = r.hosts.filter((h) => h.state === "updated" && h.note);
  if (reverted.length) err(`decnet: --halt-rollback rolled back ${reverted.join(", ")} to their previous release\n`);
  else if (r.state === "halted" && r.settings.halt_rollback && !notReverted.length) err("decnet: --halt-rollback: no host had been updated, nothing to roll back\n");
  for (const h of notReverted) err(`decnet: ${h.host}: ${clean(h.note!)}\n`);
  if (r.resume) err(`decnet: to resume: ${r.resume}\n`);
  process.exitCode = r.state === "interrupted" ? INTERRUPTED_EXIT : all ? 0 : 1;
}

export interface RolloutSession extends Disposable {
  stop: AbortSignal;
  abort: AbortSignal;
  onEvent: (e: RolloutEvent) => void;
  onProgress: (p: Progress) => void;
  /** Prints the end of a rollout and sets the exit code. */
  end(report: { release: object; releases?: object[]; hosts: HostResult[]; rollout: RolloutView }, addresses?: Map<string, string>): void;
}

/** Starts watching Ctrl-C and showing progress (a terminal), plain lines, or --events. */
export function rolloutSession(o: { json?: boolean; events?: boolean }): RolloutSession {
  if (o.json && o.events) throw usageError("give --json or --events, not both");
  const interrupts = rolloutInterrupts();
  const progress = o.json || o.events ? null : rolloutPrinter();
  return {
    stop: interrupts.stop,
    abort: interrupts.abort,
    onEvent(e) {
      if (e.event === "rollout.started") interrupts.arm();
      if (o.events) printJsonLine(e);
      progress?.onEvent(e);
    },
    onProgress: (p) => progress?.onProgress(p),
    end(report, addresses = new Map()) {
      // `releases`: one per target, with its hosts (DESIGN §16); `release` stays the first, as before mixed fleets.
      if (o.json) printJson({ release: report.release, ...(report.releases ? { releases: report.releases } : {}), hosts: report.hosts, rollout: rolloutJson(report.rollout) });
      else if (!o.events) out(hostTable(report.rollout, addresses));
      summarise(report.rollout);
    },
    [Symbol.dispose]: () => interrupts[Symbol.dispose](),
  };
}
