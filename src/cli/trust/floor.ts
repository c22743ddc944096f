/** `decnet trust floor VERSION [--root-key FILE]`: the lowest version any worker may run. */
import { defineCommand } from "citty";
import { action } from "../_action.ts";
import { rootKeyArg, trustDirArg } from "../_args.ts";
import { out } from "../_render.ts";

export default defineCommand({
  meta: { name: "floor", description: "Set the version floor in a new trust document version" },
  args: { version: { type: "positional", description: "Semver version, e.g. 0.2.0", required: true }, ...trustDirArg, ...rootKeyArg },
  run: action(async ({ args }) => {
    const { setFloor, PUSH_HINT } = await import("../../core/trust.ts");
    const r = setFloor({ dir: args.dir, rootKey: args["root-key"], version: args.version });
    const was = r.previous === null ? "no floor" : `${r.previous}${r.lowered ? ", lowered" : ""}`;
    out(`floor ${args.version} (was ${was}) in trust document version ${r.doc.signed.version}; ${PUSH_HINT}`);
  }),
});
