/** `decnet swarm status [--host H | --all] [--json] [--watch]`: one row per host; exit 1 when one is unreachable or unhealthy. */
import { defineCommand } from "citty";
import { action, listArg } from "../_action.ts";
import { jsonArg } from "../_args.ts";
import { isTerminal, out } from "../_render.ts";
import { statusTable } from "./_status-table.ts";
import { timeouts } from "../../lib/timeouts.ts";

export default defineCommand({
  meta: { name: "status", description: "Every host's updater, agent, drift, certificates and disk, at once" },
  args: {
    host: { type: "string", description: "Host name, or a comma-separated list (default: every host)" },
    all: { type: "boolean", description: "Every host not decommissioned (the default)" },
    watch: { type: "boolean", description: `Redraw every ${timeouts.statusWatch() / 1000} s until Ctrl-C` },
    concurrency: { type: "string", description: "Hosts asked at once (default 32)" },
    "timeout-ms": { type: "string", description: "Per-host timeout (default 3000, or DECNET_STATUS_TIMEOUT_MS)" },
    ...jsonArg,
  },
  run: action(async ({ args }) => {
    const { status } = await import("../../core/swarm/status.ts");
    const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
    const opts = { hosts: listArg(args.host), all: Boolean(args.all), concurrency: num(args.concurrency), timeoutMs: num(args["timeout-ms"]) };
    const stop = new AbortController();
    if (args.watch) process.once("SIGINT", () => stop.abort());
    for (;;) {
      const rep = await status(opts);
      process.exitCode = rep.hosts.every((h) => h.healthy) ? 0 : 1;
      if (args.json) out(JSON.stringify(rep, null, args.watch ? 0 : 2));
      else if (args.watch && isTerminal()) out(`\x1b[H\x1b[2J${rep.at.slice(0, 19)}Z — every ${timeouts.statusWatch() / 1000} s, Ctrl-C to stop\n${statusTable(rep)}`);
      else out(`${args.watch ? `— ${rep.at.slice(0, 19)}Z\n` : ""}${statusTable(rep)}`);
      if (!args.watch || stop.signal.aborted) return;
      await new Promise<void>((r) => {
        const t = setTimeout(r, timeouts.statusWatch());
        stop.signal.addEventListener("abort", () => (clearTimeout(t), r()), { once: true });
      });
      if (stop.signal.aborted) return;
    }
  }),
});
