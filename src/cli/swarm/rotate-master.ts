/** `decnet swarm rotate-master`: a new master identity; every older one revoked. */
import { defineCommand } from "citty";
import { action } from "../_action.ts";
import { out } from "../_render.ts";

export default defineCommand({
  meta: { name: "rotate-master", description: "Issue a new master identity and put the old one on the CRL" },
  args: {},
  run: action(async () => {
    const { replaceMasterIdentity } = await import("../../core/master-identity.ts");
    const r = await replaceMasterIdentity({ revokeOld: true });
    out(`new master identity: serial ${r.serial}, valid until ${r.notAfter}`);
    if (r.crl !== null) out(`  revoked ${r.revoked.join(", ") || "nothing"} (CRL #${r.crl}); deliver it with \`decnet swarm crl push --all\``);
  }),
});
