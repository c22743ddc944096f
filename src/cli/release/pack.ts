/**
 * `decnet release pack FILE [--version V] [--target T] [--out OUT] [--sign [--key K]]`: any executable as a
 * release; an ELF executable's target is read from its header, `--target` is for scripts.
 */
import { defineCommand } from "citty";
import type { Release } from "../../core/release.ts";
import { action } from "../_action.ts";
import { signArgs } from "../_args.ts";
import { out } from "../_render.ts";

export function describeRelease(r: Release, signer?: string): string {
  const m = r.manifest;
  const signed = signer ? `, signed by ${signer}` : "";
  return `release ${m.version} ${m.id.slice(0, 12)} (${m.target}, ${(r.size / 1e6).toFixed(1)} MB${signed}) from ${r.source}\n  ${r.file}`;
}

/** The signer for --sign, loaded before any work so a missing key fails fast. */
export async function signerFor(args: { sign?: boolean; key?: string; "trust-dir"?: string }) {
  if (!args.sign) return undefined;
  const { loadSigner } = await import("../../core/release-sign.ts");
  return loadSigner({ key: args.key, trustDir: args["trust-dir"] });
}

export default defineCommand({
  meta: { name: "pack", description: "Pack any executable as a release (CI builds, test fixtures)" },
  args: {
    file: { type: "positional", description: "The executable", required: true },
    version: { type: "string", description: "Version (default: what FILE version --json reports)" },
    target: { type: "string", description: "linux-x64|linux-arm64, for a script (an ELF executable's own header decides; a different --target is refused)" },
    out: { type: "string", description: "Output file (default ./decnet-<version>-<id>.tar.gz)" },
    ...signArgs,
  },
  run: action(async ({ args }) => {
    const { pack } = await import("../../core/release.ts");
    const signer = await signerFor(args);
    out(describeRelease(await pack({ file: args.file, version: args.version, target: args.target, out: args.out, sign: signer?.sign }), signer?.cert.id));
  }),
});
