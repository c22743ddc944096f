/**
 * Progress while pushes run: on a terminal, one live line per host redrawn
 * in place (and a rollout's overall count under them); elsewhere, one plain
 * line per phase change. A rollout of several batches adds a line per batch.
 */
import { isatty } from "node:tty";
import { err } from "../lib/stdio.ts";
import { clean } from "./_render.ts";
import type { Tally } from "../core/rollout/budget.ts";
import type { RolloutEvent } from "../core/rollout/events.ts";
import type { Progress } from "../core/swarm/update.ts";

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

function line(p: Progress): string {
  switch (p.phase) {
    case "uploading": return p.total === null ? `uploading ${mb(p.sent)} (delta)` : `uploading ${mb(p.sent)} / ${mb(p.total)}`;
    case "installing": return "installing, restarting and probing the agent";
    case "verifying": return "checking the agent's /health";
    case "self-updating": return "updating the updater itself";
    case "done": return `${clean(p.result.agent)} in ${(p.result.duration_ms / 1000).toFixed(1)} s`;
  }
}

/** `footer`: a line kept under the host lines on a terminal (a rollout's overall count). */
export function progressPrinter(hosts: string[], tty = isatty(2), footer?: () => string): { onProgress: (p: Progress) => void; finish: () => void } {
  const state = new Map<string, string>(hosts.map((h) => [h, "waiting"]));
  const width = Math.max(...hosts.map((h) => h.length));
  let drawn = 0;
  let last = 0;
  const draw = (force = false) => {
    const now = Date.now();
    if (!force && now - last < 100) return;
    last = now;
    if (drawn) err(`\x1b[${drawn}A`);
    for (const [h, s] of state) err(`\x1b[2K  ${h.padEnd(width)}  ${s}\n`);
    if (footer) err(`\x1b[2K${footer()}\n`);
    drawn = state.size + (footer ? 1 : 0);
  };
  return {
    onProgress(p) {
      const prev = state.get(p.host);
      const text = line(p);
      state.set(p.host, text);
      if (tty) return draw(p.phase !== "uploading");
      // Plain output: phase changes only, not every chunk.
      if (p.phase === "uploading" && prev?.startsWith("uploading")) return;
      err(`${p.host}: ${p.phase === "uploading" ? (p.total === null ? "uploading a delta" : `uploading ${mb(p.total)}`) : text}\n`);
    },
    finish() {
      if (tty) draw(true);
    },
  };
}

/** "4 updated, 1 failed, 0 skipped (unreachable), 3 pending[, 2 reverted]". */
export function tallyText(t: Tally): string {
  return `${t.updated} updated, ${t.failed} failed, ${t.unreachable} skipped (unreachable), ${t.pending} pending${t.reverted ? `, ${t.reverted} reverted` : ""}`;
}

const seconds = (ms: number) => (ms < 1000 ? `${ms} ms` : `${Number((ms / 1000).toFixed(1))} s`);

/**
 * A rollout's progress from its events: per batch, a line naming it, the
 * hosts' live lines (progressPrinter) with the overall count under them on a
 * terminal, and a line when the budget is checked; a single batch looks
 * like a plain push.
 */
export function rolloutPrinter(tty = isatty(2)): { onEvent: (e: RolloutEvent) => void; onProgress: (p: Progress) => void } {
  const states = new Map<string, string>();
  let batch: ReturnType<typeof progressPrinter> | null = null;
  let staged = false;
  const overall = () => {
    const t: Tally = { updated: 0, failed: 0, unreachable: 0, reverted: 0, pending: 0 };
    for (const s of states.values()) {
      if (s === "updated" || s === "failed" || s === "unreachable" || s === "reverted") t[s]++;
      else t.pending++;
    }
    return `  overall: ${tallyText(t)}`;
  };
  return {
    onEvent(e) {
      switch (e.event) {
        case "rollout.started":
          for (const h of e.hosts) states.set(h.host, h.state);
          staged = e.batches.length > 1;
          if (staged) err(`rollout ${e.rollout}: ${e.hosts.length} hosts in ${e.batches.length} batches${e.canaries ? " (the first: canaries)" : ""}\n`);
          return;
        case "batch.started":
          if (staged) err(`batch ${e.batch + 1}/${e.of}${e.canary ? " (canaries)" : ""}: ${e.hosts.join(", ")}\n`);
          batch = progressPrinter(e.hosts, tty, staged ? overall : undefined);
          return;
        case "host.finished":
          states.set(e.host, e.state);
          return;
        case "rollout.paused":
          err(`pausing ${seconds(e.ms)} before batch ${e.before_batch + 1}\n`);
          return;
        case "batch.checked":
          batch?.finish();
          batch = null;
          if (staged) err(`batch ${e.batch + 1} checked: ${e.halt ? `halting — ${e.halt}` : "within the budget"}; overall ${tallyText(e.tally)}\n`);
          return;
        case "host.reverted":
          states.set(e.host, e.state);
          err(`${e.host}: ${clean(e.note)}\n`);
          return;
      }
    },
    onProgress(p) {
      batch?.onProgress(p);
    },
  };
}
