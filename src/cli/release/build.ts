/** `decnet release build [--out FILE] [--target T] [--sign [--key K]]`: build the working tree into a release. */
import { defineCommand } from "citty";
import { action } from "../_action.ts";
import { signArgs } from "../_args.ts";
import { out } from "../_render.ts";
import { describeRelease, signerFor } from "./pack.ts";

export default defineCommand({
  meta: { name: "build", description: "Build the working tree into a release .tar.gz" },
  args: {
    out: { type: "string", description: "Output file (default ./decnet-<version>-<id>.tar.gz)" },
    target: { type: "enum", options: ["linux-x64", "linux-arm64"], description: "Target (default this machine's)" },
    ...signArgs,
  },
  run: action(async ({ args }) => {
    const { buildRelease } = await import("../../core/release.ts");
    const signer = await signerFor(args);
    out(describeRelease(await buildRelease({ out: args.out, target: args.target as "linux-x64" | undefined, sign: signer?.sign }), signer?.cert.id));
  }),
});
