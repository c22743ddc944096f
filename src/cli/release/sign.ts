/** `decnet release sign FILE [--key K] [--trust-dir DIR]`: add signature.json to a release tarball in place. */
import { defineCommand } from "citty";
import { action } from "../_action.ts";
import { out } from "../_render.ts";

export default defineCommand({
  meta: { name: "sign", description: "Sign a release tarball in place (its id does not change)" },
  args: {
    file: { type: "positional", description: "The release .tar.gz", required: true },
    key: { type: "string", description: "Signing key file (default ~/.decnet/trust/signing.key)" },
    "trust-dir": { type: "string", description: "Trust dir whose trust.json certifies the key (default ~/.decnet/trust)" },
  },
  run: action(async ({ args }) => {
    const { loadSigner, signReleaseFile } = await import("../../core/release-sign.ts");
    const r = await signReleaseFile(args.file, loadSigner({ key: args.key, trustDir: args["trust-dir"] }));
    const again = r.replaced ? ` (replacing the signature by ${r.replaced})` : "";
    out(`signed release ${r.manifest.version} ${r.manifest.id.slice(0, 12)} with key ${r.signer}${again}, ${r.bytesAdded >= 0 ? "+" : ""}${r.bytesAdded} bytes\n  ${r.file}`);
  }),
});
