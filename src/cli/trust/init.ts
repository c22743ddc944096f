/** `decnet trust init [--dir DIR] [--days N]`: root key, first signing key, trust.json version 1. */
import { defineCommand } from "citty";
import { action } from "../_action.ts";
import { daysArg, trustDirArg } from "../_args.ts";
import { out } from "../_render.ts";
import { days } from "./_days.ts";

export default defineCommand({
  meta: { name: "init", description: "Create the root key, a signing key and the first trust document" },
  args: { ...trustDirArg, ...daysArg },
  run: action(async ({ args }) => {
    const { initTrust } = await import("../../core/trust.ts");
    const r = initTrust({ dir: args.dir, days: days(args.days) });
    out([
      `trust document ${r.paths.doc} (version 1)`,
      `root key fingerprint ${r.root.fingerprint} (id ${r.root.id})`,
      `  ${r.paths.rootKey}: move it offline; trust commands then take --root-key FILE`,
      `signing key ${r.signer.id}, expires ${r.signer.expires}`,
      `  ${r.paths.signingKey}: signs releases (\`decnet release sign FILE\`)`,
    ].join("\n"));
  }),
});
