/** `decnet swarm decommission --host NAME`. */
import { defineCommand } from "citty";
import { action } from "../_action.ts";
import { hostNameArg } from "../_args.ts";
import { out } from "../_render.ts";

export default defineCommand({
  meta: { name: "decommission", description: "Mark a host decommissioned (kept in the registry, skipped by --all)" },
  args: { ...hostNameArg },
  run: action(async ({ args }) => {
    const { decommission } = await import("../../core/swarm/decommission.ts");
    const r = decommission(args.host);
    out(`decommissioned ${r.host} at ${r.decommissioned_at}`);
  }),
});
