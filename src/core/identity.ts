/**
 * The master identity at ~/.decnet/ca/master: checked on every swarm
 * command, created (CA included) when missing and renewed when 30 or fewer
 * days remain — so the ~40 ms x509 library loads only then.
 */
import { existsSync, readFileSync } from "node:fs";
import { daysLeft } from "../lib/cert-expiry.ts";
import { type BundlePaths, homePaths } from "../lib/paths.ts";

/** Same window as every leaf (core/ca.ts RENEW_WITHIN_DAYS), kept here so this check loads nothing. */
const RENEW_WITHIN_DAYS = 30;

function due(crt: string): boolean {
  try {
    return daysLeft(readFileSync(crt, "utf8")) <= RENEW_WITHIN_DAYS;
  } catch {
    return true; // unreadable: make a good one
  }
}

export async function ensureMasterIdentity(paths = homePaths()): Promise<BundlePaths> {
  const m = paths.master;
  if (existsSync(m.crt) && existsSync(m.key) && existsSync(m.ca) && !due(m.crt)) return m;
  if (!existsSync(m.crt)) {
    const { createMasterIdentity } = await import("./ca.ts");
    return createMasterIdentity(paths);
  }
  // Due or damaged: a new key and certificate; the old one expires on its own.
  const { replaceMasterIdentity } = await import("./master-identity.ts");
  await replaceMasterIdentity({ paths, revokeOld: false });
  return m;
}
