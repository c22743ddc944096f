/**
 * The target check of an install (DESIGN §16), for both release sets and both
 * upload forms: the manifest must name this updater's own target, and the
 * staged `decnet` must be what it says — its ELF header's class, byte order
 * and machine. A `#!` script runs on any CPU through its interpreter, so only
 * its manifest is checked. Run right after staging, before the signature
 * check and before any of the release's code: 400 `wrong_target`, nothing
 * changed. The manifest's half also runs as soon as an upload's manifest is
 * read, so a release for another CPU is refused before its body is taken in.
 */
import { join } from "node:path";
import { fileKind } from "../../lib/elf.ts";
import { DecnetError } from "../../lib/errors.ts";
import { RELEASE_BINARY } from "../../lib/paths.ts";
import { describeKind } from "../../protocol/target.ts";
import type { Manifest } from "../../protocol/manifest.ts";
import type { Staged } from "./staging.ts";

/**
 * The manifest's half, as soon as an upload's manifest is read (stage.ts,
 * stage-delta.ts): a release for another CPU is refused before its body is
 * received and hashed — ~100 MB, slow on a small board. The gate below
 * still decides, for every install.
 */
export function manifestTargetCheck(m: Manifest, own: string, executable?: string): void {
  if (m.target === own) return;
  throw new DecnetError("wrong_target", `release ${m.id.slice(0, 12)} is built for ${m.target}, this worker is ${own}; nothing was changed`, {
    detail: { worker: own, manifest: m.target, ...(executable ? { executable } : {}) },
  });
}

export function targetGate(own: string) {
  return (s: Pick<Staged, "dir" | "manifest">): void => {
    const said = s.manifest.target;
    const kind = fileKind(join(s.dir, RELEASE_BINARY));
    const detail = { worker: own, manifest: said, executable: describeKind(kind) };
    manifestTargetCheck(s.manifest, own, describeKind(kind));
    if (kind.kind === "script") return;
    if (kind.kind !== "elf" || kind.target !== own) {
      throw new DecnetError("wrong_target", `release ${s.manifest.id.slice(0, 12)} says ${said} but its ${RELEASE_BINARY} is ${describeKind(kind)}; nothing was changed`, { detail });
    }
  };
}
