/**
 * What every `swarm update` does for a host's identity once it has reached
 * it: renew its certificates when they are due within 30 days, then hand it
 * the master's CRL (when the master has revoked anything). The push itself
 * is never failed by this: the row says what happened (DESIGN §14, §17).
 */
import { existsSync, readFileSync } from "node:fs";
import { pushCrl } from "../../client/identity.ts";
import type { Endpoint } from "../../client/http.ts";
import { crlDates } from "../../lib/crl-dates.ts";
import { errorMessage, RemoteError } from "../../lib/errors.ts";
import { homePaths } from "../../lib/paths.ts";
import { timeouts } from "../../lib/timeouts.ts";
import type { AgentSwitch } from "../../protocol/identity.ts";
import type { Ca } from "../ca.ts";
import { dueForRenewal } from "../identity.ts";
import type { Host } from "../registry.ts";
import type { IdentityStore } from "../registry-identity.ts";

export const updaterEndpoint = (h: Host): Endpoint => ({ host: h.name, address: h.address, port: h.updater_port, role: "updater" });

export interface CrlOffer {
  /** The number the host holds now. */
  number: number;
  /** The number it held before; null when it held none. */
  previous: number | null;
  changed: boolean;
  /** What its agent did with the CRL (null when nothing changed, or an updater that does not say). */
  agent: AgentSwitch | null;
}

/** Offers `pem` (CRL number `number`) to a host; the same CRL held already is no change. Records a change. */
export async function offerCrl(h: Host, pem: string, number: number, store: IdentityStore): Promise<CrlOffer> {
  try {
    const r = await pushCrl(updaterEndpoint(h), pem, { timeoutMs: timeouts.request() });
    await store.event("crl-push", h.name, JSON.stringify({ number: r.number, previous: r.previous }));
    return { number: r.number, previous: r.previous, changed: true, agent: r.agent ?? null };
  } catch (e) {
    const held = e instanceof RemoteError && e.code === "stale_crl" ? (e.detail as { held?: unknown } | undefined)?.held : undefined;
    if (held === number) return { number, previous: number, changed: false, agent: null };
    if (typeof held === "number") {
      throw new RemoteError(h.name, "stale_crl", `holds CRL #${held}, newer than this master's #${number}`, 409, undefined, "this master's ~/.decnet is behind the one that revoked last; use that one");
    }
    throw e;
  }
}

/** One host's identity upkeep, as its row carries it. */
export interface IdentityUpkeep {
  /** New certificates, when they were due; null when not. */
  renewed: { serials: { agent: string; updater: string }; not_after: string; agent: AgentSwitch | null } | null;
  /** The CRL the host holds after this push; null when the master has none. */
  crl: { number: number; changed: boolean } | null;
  /** Why renewal or CRL delivery failed. */
  error: string | null;
}

/** The row's words for it ("" when there is nothing to say). */
export function upkeepNote(u: IdentityUpkeep | null): string {
  if (!u) return "";
  const parts: string[] = [];
  if (u.renewed) parts.push(`certificates renewed (due within 30 days), now until ${u.renewed.not_after.slice(0, 10)}`);
  if (u.crl?.changed) parts.push(`CRL #${u.crl.number} delivered`);
  if (u.error) parts.push(`identity upkeep failed: ${u.error}`);
  return parts.join("; ");
}

/**
 * The upkeep for one `swarm update`: the registry opened once, the CA loaded
 * only if a host is due. The CRL file is read per host, after its renewal
 * (which revokes its old certificates and so writes a newer one).
 */
export async function identityUpkeep(): Promise<{ run: (h: Host) => Promise<IdentityUpkeep>; [Symbol.dispose](): void }> {
  const { IdentityStore } = await import("../registry-identity.ts");
  const home = homePaths();
  const store = new IdentityStore(home.db);
  let ca: Promise<Ca> | undefined;
  const loadCa = () => (ca ??= import("../ca.ts").then((m) => m.loadOrCreateCa(home)));
  // A CRL a third through its life is re-signed once, before any host gets it (core/crl.ts currentCrl).
  if (existsSync(home.crl)) {
    const { CRL_DAYS } = await import("../crl.ts"); // no X.509 library: that loads only to re-sign
    const next = (() => { try { return crlDates(readFileSync(home.crl, "utf8")).nextUpdate; } catch { return null; } })();
    if (!next || next.getTime() - Date.now() < (CRL_DAYS * 86_400_000 * 2) / 3) {
      const { publishCrl } = await import("../crl.ts");
      await publishCrl(await loadCa(), store, { file: home.crl });
    }
  }
  const run = async (h: Host): Promise<IdentityUpkeep> => {
    const u: IdentityUpkeep = { renewed: null, crl: null, error: null };
    try {
      // Only a host whose certificates are on record: one enrolled before records were kept is renewed by `swarm renew`.
      if (h.has_updater && (await store.certs(h.name, ["agent", "updater"])).length > 0 && (await dueForRenewal(store, h.name))) {
        const { renewHost } = await import("../renew.ts");
        const r = await renewHost(updaterEndpoint(h), { ca: await loadCa(), store, sans: h.sans, crlFile: home.crl });
        u.renewed = { serials: r.serials, not_after: r.notAfter, agent: r.agent };
      }
      if (existsSync(home.crl)) {
        const pem = readFileSync(home.crl, "utf8");
        const number = (await store.crlState())?.number ?? 0;
        const r = await offerCrl(h, pem, number, store);
        u.crl = { number: r.number, changed: r.changed };
      }
    } catch (e) {
      u.error = errorMessage(e);
    }
    return u;
  };
  return { run, [Symbol.dispose]: () => store[Symbol.dispose]() };
}
