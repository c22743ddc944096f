/** `decnet swarm list [--json]`. */
import { defineCommand } from "citty";
import { action } from "../_action.ts";
import { jsonArg } from "../_args.ts";
import { out, paint, printJson, short, table } from "../_render.ts";

export default defineCommand({
  meta: { name: "list", description: "List enrolled hosts" },
  args: { ...jsonArg },
  run: action(async ({ args }) => {
    const { list } = await import("../../core/swarm/list.ts");
    const hosts = await list();
    if (args.json) return printJson(hosts);
    if (hosts.length === 0) return out("no hosts enrolled (decnet swarm enroll --host NAME --address ADDR --updater)");
    out(table(
      ["host", "address", "updater", "target", "enrolled", "release", "last result", "state"],
      hosts.map((h) => [h.name, h.address, h.has_updater ? "yes" : "no", h.target ?? "—", h.enrolled_at.slice(0, 19), short(h.last_release), h.last_result ?? "—", paint(h.decommissioned_at ? "decommissioned" : "active")]),
    ));
  }),
});
