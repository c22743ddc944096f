/** `decnet swarm logs --host H [--updater] [-n N] [-f]`: a worker's log through its updater, control characters escaped. */
import { defineCommand } from "citty";
import { action } from "../_action.ts";
import { hostNameArg } from "../_args.ts";
import { clean, out } from "../_render.ts";

export default defineCommand({
  meta: { name: "logs", description: "The agent's output (or the updater's log) of a host, through its updater" },
  args: {
    ...hostNameArg,
    updater: { type: "boolean", description: "The updater's own log instead of the agent's output" },
    lines: { type: "string", alias: "n", description: "How many of the last lines (default 100, at most 10000)" },
    follow: { type: "boolean", alias: "f", description: "Keep printing new lines until Ctrl-C" },
  },
  run: action(async ({ args }) => {
    const { logs } = await import("../../core/swarm/logs.ts");
    const stop = new AbortController();
    if (args.follow) process.once("SIGINT", () => stop.abort());
    // A worker's text: every line escaped (DESIGN §17), printed as it comes.
    await logs({ host: args.host, updater: Boolean(args.updater), lines: args.lines === undefined ? undefined : Number(args.lines), follow: Boolean(args.follow), signal: stop.signal, onLine: (l) => out(clean(l)) });
  }),
});
