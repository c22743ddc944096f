/**
 * Decommission a host: its certificates go on the CRL first, then it is
 * marked decommissioned (kept in the registry, excluded from --all). In that
 * order, so a crash in between leaves a host a rerun can finish.
 */
import { Registry } from "../registry.ts";
import { requireHost } from "./hosts.ts";

export interface DecommissionResult {
  host: string;
  decommissioned_at: string;
  /** Serials put on the CRL now. */
  revoked: string[];
  /** The CRL number listing them; null when the host had no recorded certificate left to revoke. */
  crl: number | null;
}

export async function decommission(name: string, now = new Date()): Promise<DecommissionResult> {
  using reg = new Registry();
  await requireHost(reg, name);
  const { IdentityStore } = await import("../registry-identity.ts");
  using store = new IdentityStore();
  const serials = (await store.certs(name, ["agent", "updater"], { active: true, now })).map((c) => c.serial);
  let revoked: string[] = [];
  let crl: number | null = null;
  if (serials.length > 0) {
    const { loadOrCreateCa } = await import("../ca.ts");
    const { revoke } = await import("../crl.ts");
    const r = await revoke(await loadOrCreateCa(), store, serials, "decommissioned", { now });
    revoked = r.revoked;
    crl = r.number;
  }
  const at = now.toISOString();
  await reg.decommission(name, at);
  await store.event("decommission", name, JSON.stringify({ revoked, crl }), now);
  return { host: name, decommissioned_at: at, revoked, crl };
}
