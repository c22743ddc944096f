/** `decnet trust revoke-signer KEYID [--root-key FILE]`: revoke a signing key for good. */
import { defineCommand } from "citty";
import { action } from "../_action.ts";
import { rootKeyArg, trustDirArg } from "../_args.ts";
import { out } from "../_render.ts";

export default defineCommand({
  meta: { name: "revoke-signer", description: "Revoke a signing key in a new trust document version" },
  args: { keyid: { type: "positional", description: "The signing key's id (see `decnet trust show`)", required: true }, ...trustDirArg, ...rootKeyArg },
  run: action(async ({ args }) => {
    const { revokeSigner, PUSH_HINT } = await import("../../core/trust.ts");
    const r = revokeSigner({ dir: args.dir, rootKey: args["root-key"], keyId: args.keyid });
    out(`signing key ${args.keyid} revoked in trust document version ${r.doc.signed.version}; ${PUSH_HINT}`);
  }),
});
