/**
 * The master identity at ~/.decnet/ca/master: checked on every swarm
 * command, created (CA included) only when missing — so the ~40 ms x509
 * library loads only then.
 */
import { existsSync } from "node:fs";
import { type BundlePaths, homePaths } from "../lib/paths.ts";

export async function ensureMasterIdentity(paths = homePaths()): Promise<BundlePaths> {
  const m = paths.master;
  if (existsSync(m.crt) && existsSync(m.key) && existsSync(m.ca)) return m;
  const { createMasterIdentity } = await import("./ca.ts");
  return createMasterIdentity(paths);
}
