/**
 * The target check of an install (DESIGN §16), for both release sets and both
 * upload forms: the manifest must name this updater's own target, and the
 * staged `decnet` must be what it says — its ELF header's class, byte order
 * and machine. A `#!` script runs on any CPU through its interpreter, so only
 * its manifest is checked. Run right after staging, before the signature
 * check and before any of the release's code: 400 `wrong_target`, nothing
 * changed.
 */
import { join } from "node:path";
import { fileKind } from "../../lib/elf.ts";
import { DecnetError } from "../../lib/errors.ts";
import { RELEASE_BINARY } from "../../lib/paths.ts";
import { describeKind } from "../../protocol/target.ts";
import type { Staged } from "./staging.ts";

export function targetGate(own: string) {
  return (s: Pick<Staged, "dir" | "manifest">): void => {
    const said = s.manifest.target;
    const kind = fileKind(join(s.dir, RELEASE_BINARY));
    const detail = { worker: own, manifest: said, executable: describeKind(kind) };
    if (said !== own) {
      throw new DecnetError("wrong_target", `release ${s.manifest.id.slice(0, 12)} is built for ${said}, this worker is ${own}; nothing was changed`, { detail });
    }
    if (kind.kind === "script") return;
    if (kind.kind !== "elf" || kind.target !== own) {
      throw new DecnetError("wrong_target", `release ${s.manifest.id.slice(0, 12)} says ${said} but its ${RELEASE_BINARY} is ${describeKind(kind)}; nothing was changed`, { detail });
    }
  };
}
