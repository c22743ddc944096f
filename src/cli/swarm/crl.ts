/** `decnet swarm crl push (--host H | --all) [--json]`: the master's CRL to the workers, enforced by both daemons. */
import { defineCommand } from "citty";
import { action, listArg } from "../_action.ts";
import { jsonArg } from "../_args.ts";
import { out, paint, printJson, table } from "../_render.ts";
import { err } from "../../lib/stdio.ts";

const push = defineCommand({
  meta: { name: "push", description: "Send the master's CRL (~/.decnet/ca/crl.pem) to hosts; both daemons enforce it without restarting" },
  args: {
    host: { type: "string", description: "Host name, or a comma-separated list (repeatable)" },
    all: { type: "boolean", description: "Every host not decommissioned" },
    ...jsonArg,
  },
  run: action(async ({ args }) => {
    const { crlPush } = await import("../../core/swarm/crl-push.ts");
    const r = await crlPush({ hosts: listArg(args.host), all: Boolean(args.all) });
    if (args.json) printJson(r);
    else out(table(["host", "result", "detail"], r.rows.map((x) => [x.host, paint(x.outcome), x.detail])));
    const failed = r.rows.filter((x) => x.outcome === "error").length;
    if (failed) {
      if (!args.json) err(`decnet: ${failed} of ${r.rows.length} host(s) did not take CRL #${r.number} — see the detail column\n`);
      process.exitCode = 1;
    }
  }),
});

export default defineCommand({
  meta: { name: "crl", description: "The certificate revocation list on the workers" },
  subCommands: { push },
});
