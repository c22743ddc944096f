/** `decnet swarm registry migrate --to postgres://… [--json]`: the local sqlite registry copied into PostgreSQL. */
import { defineCommand } from "citty";
import { action } from "../_action.ts";
import { jsonArg } from "../_args.ts";
import { out, printJson, table } from "../_render.ts";

const migrate = defineCommand({
  meta: { name: "migrate", description: "Copy the local registry (~/.decnet/swarm.db) into PostgreSQL; rows it has already are kept, so it can be run again" },
  args: { to: { type: "string", description: "postgres://USER[:PASSWORD]@HOST[:PORT]/DBNAME", required: true }, ...jsonArg },
  run: action(async ({ args }) => {
    const { copyRegistry } = await import("../../core/registry-copy.ts");
    const r = await copyRegistry(args.to);
    if (args.json) return printJson(r);
    out(table(["table", "rows", "copied"], r.tables.map((t) => [t.table, String(t.rows), String(t.copied)])));
    const copied = r.tables.reduce((n, t) => n + t.copied, 0);
    out(copied ? `copied ${copied} row(s) from ${r.from} into ${r.to}; use it with DECNET_REGISTRY_URL set to that URL` : `nothing new to copy: ${r.to} already has every row of ${r.from}`);
  }),
});

export default defineCommand({
  meta: { name: "registry", description: "The registry: move it into a shared PostgreSQL" },
  subCommands: { migrate },
});
