/** `decnet swarm enroll`: issue a host's certificates and record it; `--updater-only` adds the updater bundle. */
import { defineCommand } from "citty";
import { action, listArg } from "../_action.ts";
import { out } from "../_render.ts";

export default defineCommand({
  meta: { name: "enroll", description: "Issue a host's certificate bundle(s) and record it" },
  args: {
    host: { type: "string", description: "Host name (a DNS label)", required: true },
    address: { type: "string", description: "Address the master reaches it at (IP or DNS name); required unless --updater-only" },
    sans: { type: "string", description: "Extra SANs, comma-separated" },
    updater: { type: "boolean", description: "Also issue the updater bundle (DIR-updater)" },
    "updater-only": { type: "boolean", description: "Only the updater bundle, for a host enrolled without --updater (SANs from the registry)" },
    "out-dir": { type: "string", description: "Where to write the bundle (default ~/.decnet/bundles/<host>)" },
  },
  run: action(async ({ args }) => {
    const { enroll } = await import("../../core/swarm/enroll.ts");
    const r = await enroll({
      host: args.host, address: args.address, sans: listArg(args.sans), updater: args.updater, updaterOnly: args["updater-only"], outDir: args["out-dir"],
    });
    out(`${r.agentBundle ? "enrolled" : "issued the updater bundle for"} ${r.host} (${r.sans.join(", ")})`);
    if (r.agentBundle) out(`  agent bundle:   ${r.agentBundle}`);
    if (r.updaterBundle) out(`  updater bundle: ${r.updaterBundle}`);
  }),
});
