/** `decnet release pack FILE [--version V] [--out OUT]`: any executable as a release. */
import { defineCommand } from "citty";
import type { Release } from "../../core/release.ts";
import { action } from "../_action.ts";
import { out } from "../_render.ts";

export function describeRelease(r: Release): string {
  const m = r.manifest;
  return `release ${m.version} ${m.id.slice(0, 12)} (${m.target}, ${(r.size / 1e6).toFixed(1)} MB) from ${r.source}\n  ${r.file}`;
}

export default defineCommand({
  meta: { name: "pack", description: "Pack any executable as a release (CI builds, test fixtures)" },
  args: {
    file: { type: "positional", description: "The executable", required: true },
    version: { type: "string", description: "Version (default: what FILE version --json reports)" },
    out: { type: "string", description: "Output file (default ./decnet-<version>-<id>.tar.gz)" },
  },
  run: action(async ({ args }) => {
    const { pack } = await import("../../core/release.ts");
    out(describeRelease(await pack({ file: args.file, version: args.version, out: args.out })));
  }),
});
