/** `decnet version [--json]`. */
import { defineCommand } from "citty";
import { buildInfo } from "../lib/build-info.ts";
import { action } from "./_action.ts";
import { jsonArg } from "./_args.ts";
import { out } from "../lib/stdio.ts";

export default defineCommand({
  meta: { name: "version", description: "Print version, git sha, build time, target and release id" },
  args: { ...jsonArg },
  run: action(({ args }) => {
    const { compiled: _, ...info } = buildInfo();
    if (args.json) {
      out(`${JSON.stringify(info)}\n`);
      return;
    }
    const sha = `${info.git.sha.slice(0, 12)}${info.git.dirty ? "-dirty" : ""}`;
    const rel = info.release ? info.release.slice(0, 12) : "none";
    out(`decnet ${info.version} (${sha}, built ${info.built_at ?? "from source"}, ${info.target}, release ${rel})\n`);
  }),
});
