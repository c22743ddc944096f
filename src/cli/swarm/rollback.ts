/** `decnet swarm rollback --host NAME`. */
import { defineCommand } from "citty";
import { action } from "../_action.ts";
import { hostNameArg } from "../_args.ts";
import { clean, out, short } from "../_render.ts";

export default defineCommand({
  meta: { name: "rollback", description: "Swap a host back to its previous release" },
  args: { ...hostNameArg },
  run: action(async ({ args }) => {
    const { rollback } = await import("../../core/swarm/rollback.ts");
    const r = await rollback(args.host);
    out(`${r.host}: rolled back to ${clean(r.release.version)} ${short(r.release.id)} (was ${short(r.previous)}), agent pid ${r.agent_pid}`);
  }),
});
