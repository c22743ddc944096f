/** Typed calls to a joined updater's identity routes (renew, CRL), over mTLS as the master. */
import type { Bundle } from "../lib/tls.ts";
import { CrlPushResponse, RenewCsrResponse, RenewInstallResponse, type RenewInstallRequest } from "../protocol/identity.ts";
import { call, type Endpoint } from "./http.ts";

const json = (body: unknown) => ({ method: "POST" as const, body: JSON.stringify(body), headers: { "content-type": "application/json" } });

export function renewCsr(e: Endpoint, o: { timeoutMs: number; bundle?: Bundle }) {
  return call(e, "/renew/csr", { method: "POST", schema: RenewCsrResponse, ...o });
}

export function renewInstall(e: Endpoint, certs: RenewInstallRequest["certs"], o: { timeoutMs: number; bundle?: Bundle }) {
  return call(e, "/renew/install", { ...json({ certs }), schema: RenewInstallResponse, ...o });
}

export function pushCrl(e: Endpoint, crl: string, o: { timeoutMs: number; bundle?: Bundle }) {
  return call(e, "/crl", { ...json({ crl }), schema: CrlPushResponse, ...o });
}
