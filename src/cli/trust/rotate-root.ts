/** `decnet trust rotate-root --new-root-out FILE [--root-key OLD]`: replace the root, signed by the old one. */
import { defineCommand } from "citty";
import { action } from "../_action.ts";
import { rootKeyArg, trustDirArg } from "../_args.ts";
import { out } from "../_render.ts";

export default defineCommand({
  meta: { name: "rotate-root", description: "Make a new root key; the old root signs the document that names it" },
  args: {
    ...trustDirArg,
    ...rootKeyArg,
    "new-root-out": { type: "string", description: "Where to write the new root key (a new file; keep it offline)", required: true },
  },
  run: action(async ({ args }) => {
    const { rotateRoot, PUSH_HINT } = await import("../../core/trust.ts");
    const r = rotateRoot({ dir: args.dir, rootKey: args["root-key"], newRootOut: args["new-root-out"] });
    out([
      `root ${r.oldRoot} replaced by ${r.newRoot.id} (fingerprint ${r.newRoot.fingerprint}) in trust document version ${r.doc.signed.version}`,
      `  new root key: ${r.newRoot.file} (keep it offline; the old one signs nothing from now on)`,
      `  signing keys re-certified by the new root; re-sign releases signed before this (\`decnet release sign FILE\`)`,
      `  ${PUSH_HINT}`,
    ].join("\n"));
  }),
});
