/** `decnet swarm releases --host NAME [--json]`. */
import { defineCommand } from "citty";
import { action } from "../_action.ts";
import { hostNameArg, jsonArg } from "../_args.ts";
import { out, printJson, short, table } from "../_render.ts";

export default defineCommand({
  meta: { name: "releases", description: "List the releases a host keeps" },
  args: { ...hostNameArg, ...jsonArg },
  run: action(async ({ args }) => {
    const { releases } = await import("../../core/swarm/releases.ts");
    const r = await releases(args.host);
    if (args.json) return printJson(r);
    if (r.releases.length === 0) return out(`${args.host}: no releases installed`);
    out(table(
      ["release", "version", "git", "installed", "status", "signed by", "slot"],
      r.releases.map((x) => [short(x.id), x.version ?? "?", x.git ? `${x.git.sha.slice(0, 10)}${x.git.dirty ? "-dirty" : ""}` : "?", x.installed_at?.slice(0, 19) ?? "?", x.status, x.signer ?? "—", x.current ? "current" : x.previous ? "previous" : ""]),
    ));
  }),
});
