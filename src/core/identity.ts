/**
 * The master identity at ~/.decnet/ca/master: checked on every swarm
 * command, created (CA included) when missing and renewed when 30 or fewer
 * days remain — so the ~40 ms x509 library loads only then.
 */
import { existsSync, readFileSync } from "node:fs";
import { daysLeft } from "../lib/cert-expiry.ts";
import { type BundlePaths, homePaths } from "../lib/paths.ts";
import type { IdentityStore } from "./registry-identity.ts";

/**
 * Leaves live 90 days and are renewed when 30 or fewer remain (README): a key
 * that leaks from a host the CRL never reaches stops working on its own
 * within a quarter, and a fleet pushed monthly renews on the way. Kept here,
 * not in ca.ts, so that checking them loads no X.509 library.
 */
export const LEAF_DAYS = 90;
export const RENEW_WITHIN_DAYS = 30;
const DAY_MS = 86_400_000;

/** True when the host has no recorded agent or updater certificate left, or one expires within RENEW_WITHIN_DAYS. */
export async function dueForRenewal(store: IdentityStore, host: string, now = new Date()): Promise<boolean> {
  const active = await store.certs(host, ["agent", "updater"], { active: true, now });
  const limit = now.getTime() + RENEW_WITHIN_DAYS * DAY_MS;
  return !active.some((c) => c.role === "agent") || !active.some((c) => c.role === "updater") || active.some((c) => Date.parse(c.not_after) <= limit);
}

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
