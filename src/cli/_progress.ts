/**
 * Per-host progress while pushes run: on a terminal, one live line per host
 * redrawn in place; elsewhere, one plain line per phase change.
 */
import { isatty } from "node:tty";
import { err } from "../lib/stdio.ts";
import { clean } from "./_render.ts";
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

export function progressPrinter(hosts: string[], tty = isatty(2)): { onProgress: (p: Progress) => void; finish: () => void } {
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
    drawn = state.size;
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
