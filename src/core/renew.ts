/**
 * The master's end of renewal and CRL delivery for one host: new keys made on
 * the worker, its CSRs signed with the registry's names, the old certificates
 * revoked as superseded once the worker has switched; and pushing the CRL.
 */
import { pushCrl, renewCsr, renewInstall } from "../client/identity.ts";
import type { Endpoint } from "../client/http.ts";
import { RemoteError } from "../lib/errors.ts";
import type { Bundle } from "../lib/tls.ts";
import type { AgentSwitch } from "../protocol/identity.ts";
import type { Ca } from "./ca.ts";
import { currentCrl, revoke } from "./crl.ts";
import { signCsr } from "./csr-sign.ts";
import type { IdentityStore } from "./registry-identity.ts";


export interface RenewOptions {
  ca: Ca;
  store: IdentityStore;
  /** The registry's SANs for the host. */
  sans: string[];
  timeoutMs?: number;
  /** The master identity to call with (default: ~/.decnet/ca/master). */
  bundle?: Bundle;
  now?: () => Date;
  /** The CRL file (default ~/.decnet/ca/crl.pem). */
  crlFile?: string;
}

export interface RenewResult {
  host: string;
  serials: { agent: string; updater: string };
  notAfter: string;
  /** The previous certificates, now on the CRL (push it). */
  superseded: string[];
  crl: number | null;
  /** What the worker's agent did with its new certificate (null: an updater that does not say). */
  agent: AgentSwitch | null;
}

export { dueForRenewal } from "./identity.ts";

/** `e` is the host's updater endpoint. */
export async function renewHost(e: Endpoint, o: RenewOptions): Promise<RenewResult> {
  const now = () => o.now?.() ?? new Date();
  const call = { timeoutMs: o.timeoutMs ?? 30_000, bundle: o.bundle };
  const before = (await o.store.certs(e.host, ["agent", "updater"], { active: true, now: now() })).map((c) => c.serial);
  const { csr } = await renewCsr(e, call);
  const agent = await signCsr(o.ca, csr.agent, { role: "agent", host: e.host, sans: o.sans, now: now() });
  const updater = await signCsr(o.ca, csr.updater, { role: "updater", host: e.host, sans: o.sans, now: now() });
  await o.store.tx(async () => {
    await o.store.recordIssued(agent, e.host, now());
    await o.store.recordIssued(updater, e.host, now());
  });
  const r = await renewInstall(e, { agent: agent.certPem, updater: updater.certPem }, call);
  if (r.serials.agent !== agent.serial || r.serials.updater !== updater.serial) {
    throw new RemoteError(e.host, "bad_response", "the worker installed other certificates than the ones sent");
  }
  let superseded: string[] = [];
  let crl: number | null = null;
  if (before.length > 0) {
    const rv = await revoke(o.ca, o.store, before, "superseded", { now: now(), file: o.crlFile });
    superseded = rv.revoked;
    crl = rv.number;
  }
  await o.store.event("renew", e.host, JSON.stringify({ serials: r.serials, superseded }), now());
  return { host: e.host, serials: r.serials, notAfter: r.not_after, superseded, crl, agent: r.agent ?? null };
}

/** Delivers the master's current CRL to a host's updater (a fresh one if it is due). */
export async function deliverCrl(e: Endpoint, o: { ca: Ca; store: IdentityStore; timeoutMs?: number; bundle?: Bundle; now?: Date; crlFile?: string }) {
  const c = await currentCrl(o.ca, o.store, { now: o.now, file: o.crlFile });
  return pushCrl(e, c.pem, { timeoutMs: o.timeoutMs ?? 10_000, bundle: o.bundle });
}
