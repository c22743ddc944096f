/** `decnet swarm trust push (--host H | --all) [--json]`: the fleet's trust document to the updaters. */
import { defineCommand } from "citty";
import { action, listArg } from "../_action.ts";
import { jsonArg } from "../_args.ts";
import { out, paint, printJson, table } from "../_render.ts";
import { err } from "../../lib/stdio.ts";

const push = defineCommand({
  meta: { name: "push", description: "Send ~/.decnet/trust/trust.json to hosts' updaters (with every root rotation they missed)" },
  args: {
    host: { type: "string", description: "Host name, or a comma-separated list (repeatable)" },
    all: { type: "boolean", description: "Every host not decommissioned" },
    ...jsonArg,
  },
  run: action(async ({ args }) => {
    const { trustPush } = await import("../../core/swarm/trust-push.ts");
    const rows = await trustPush({ hosts: listArg(args.host), all: Boolean(args.all) });
    if (args.json) printJson(rows);
    else out(table(["host", "result", "detail"], rows.map((r) => [r.host, paint(r.outcome), r.detail])));
    const failed = rows.filter((r) => r.outcome === "error").length;
    if (failed) {
      if (!args.json) err(`decnet: ${failed} of ${rows.length} host(s) did not take the trust document — see the detail column\n`);
      process.exitCode = 1;
    }
  }),
});

export default defineCommand({
  meta: { name: "trust", description: "The fleet's trust document on the workers" },
  subCommands: { push },
});
