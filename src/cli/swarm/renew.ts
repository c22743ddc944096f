/** `decnet swarm renew (--host H | --all) [--json]`: new keys on the workers, new certificates, served without a restart. */
import { defineCommand } from "citty";
import { action, listArg } from "../_action.ts";
import { jsonArg } from "../_args.ts";
import { out, paint, printJson, table } from "../_render.ts";
import { err } from "../../lib/stdio.ts";

export default defineCommand({
  meta: { name: "renew", description: "Renew hosts' agent and updater certificates (keys made on each worker; no restart)" },
  args: {
    host: { type: "string", description: "Host name, or a comma-separated list (repeatable)" },
    all: { type: "boolean", description: "Every host not decommissioned" },
    ...jsonArg,
  },
  run: action(async ({ args }) => {
    const { renew } = await import("../../core/swarm/renew.ts");
    const rows = await renew({ hosts: listArg(args.host), all: Boolean(args.all) });
    if (args.json) printJson(rows);
    else out(table(["host", "result", "detail"], rows.map((r) => [r.host, paint(r.outcome), r.detail])));
    const failed = rows.filter((r) => r.outcome !== "renewed").length;
    if (failed) {
      if (!args.json) err(`decnet: ${failed} of ${rows.length} host(s) not renewed — see the detail column\n`);
      process.exitCode = 1;
    }
  }),
});
