/** `decnet trust add-signer [--out KEYFILE] [--days N] [--root-key FILE]`: certify a new signing key. */
import { defineCommand } from "citty";
import { action } from "../_action.ts";
import { daysArg, rootKeyArg, trustDirArg } from "../_args.ts";
import { out } from "../_render.ts";
import { days } from "./_days.ts";

export default defineCommand({
  meta: { name: "add-signer", description: "Make a new signing key and certify it in a new trust document version" },
  args: {
    ...trustDirArg,
    ...rootKeyArg,
    ...daysArg,
    out: { type: "string", description: "Where to write the new key (default DIR/signing-<id>.key)" },
  },
  run: action(async ({ args }) => {
    const { addSigner, PUSH_HINT } = await import("../../core/trust.ts");
    const r = addSigner({ dir: args.dir, rootKey: args["root-key"], out: args.out, days: days(args.days) });
    out(`signing key ${r.signer.id}, expires ${r.signer.expires}: ${r.signer.file}\ntrust document version ${r.doc.signed.version} certifies it; ${PUSH_HINT}`);
  }),
});
