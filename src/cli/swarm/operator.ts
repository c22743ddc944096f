/** `decnet swarm operator add NAME --out DIR | revoke NAME`: identities for other operators and CI runners. */
import { defineCommand } from "citty";
import { action } from "../_action.ts";
import { out } from "../_render.ts";

const add = defineCommand({
  meta: { name: "add", description: "Issue a master (clientAuth) identity for another operator or a CI runner" },
  args: {
    name: { type: "positional", description: "Operator name", required: true },
    out: { type: "string", description: "Folder to write ca.crt, worker.crt and worker.key to", required: true },
    days: { type: "string", description: "Lifetime in days (default 90, at most 365)" },
  },
  run: action(async ({ args }) => {
    const { addOperator } = await import("../../core/swarm/operator.ts");
    const r = await addOperator({ name: args.name, out: args.out, days: args.days === undefined ? undefined : Number(args.days) });
    out(`operator ${r.name}: serial ${r.serial}, valid until ${r.notAfter}`);
    out(`  bundle: ${r.bundle} (use it as that machine's ~/.decnet/ca/master)`);
  }),
});

const revoke = defineCommand({
  meta: { name: "revoke", description: "Put an operator's identity on the CRL" },
  args: { name: { type: "positional", description: "Operator name", required: true } },
  run: action(async ({ args }) => {
    const { revokeOperator } = await import("../../core/swarm/operator.ts");
    const r = await revokeOperator(args.name);
    if (r.crl === null) out(`operator ${r.name} has no valid identity left; nothing to revoke`);
    else out(`revoked operator ${r.name} (${r.revoked.join(", ")}) in CRL #${r.crl}; deliver it with \`decnet swarm crl push --all\``);
  }),
});

export default defineCommand({
  meta: { name: "operator", description: "Add or revoke identities of other operators and CI runners" },
  subCommands: { add, revoke },
});
