/** `decnet swarm history [--host H] [--limit N] [--json]`: pushes as recorded, with who made them. */
import { defineCommand } from "citty";
import { action } from "../_action.ts";
import { jsonArg } from "../_args.ts";
import { out, paint, printJson, short, table } from "../_render.ts";

export default defineCommand({
  meta: { name: "history", description: "Push history from the registry (updates, self-updates, rollbacks), oldest first" },
  args: {
    host: { type: "string", description: "Only this host" },
    limit: { type: "string", description: "The newest N rows (default 50)" },
    ...jsonArg,
  },
  run: action(async ({ args }) => {
    const { history } = await import("../../core/swarm/history.ts");
    const rows = await history({ host: args.host, limit: args.limit === undefined ? undefined : Number(args.limit) });
    if (args.json) return printJson(rows);
    if (rows.length === 0) return out("no pushes recorded");
    out(table(["at", "host", "kind", "release", "outcome", "operator", "rollout"], rows.map((p) => [p.at.slice(0, 19), p.host, p.kind, short(p.release_id), paint(p.outcome), p.operator, p.rollout_id ?? "—"])));
  }),
});
