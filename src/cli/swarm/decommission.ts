/** `decnet swarm decommission --host NAME`: revoke its certificates, then retire it. */
import { defineCommand } from "citty";
import { action } from "../_action.ts";
import { hostNameArg } from "../_args.ts";
import { out } from "../_render.ts";

export default defineCommand({
  meta: { name: "decommission", description: "Revoke a host's certificates and mark it decommissioned (kept in the registry, skipped by --all)" },
  args: { ...hostNameArg },
  run: action(async ({ args }) => {
    const { decommission } = await import("../../core/swarm/decommission.ts");
    const r = await decommission(args.host);
    out(`decommissioned ${r.host} at ${r.decommissioned_at}`);
    if (r.crl !== null) out(`  revoked ${r.revoked.length} certificate(s) (CRL #${r.crl}); deliver it with \`decnet swarm crl push --all\``);
  }),
});
