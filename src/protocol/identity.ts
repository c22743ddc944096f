/**
 * Identity routes of a joined updater, over mTLS as the master: renew (new
 * keys made on the worker, CSRs out, certificates in) and CRL delivery.
 */
import { z } from "zod";
import { defineRoute } from "./route.ts";
/** Matches lib/crl.ts MAX_CRL_BYTES. */
const MAX_CRL = 4 * 1024 * 1024;
const Pem = z.string().min(1).max(8 * 1024);

/** The worker's new CSRs; their keys stay pending on the worker until /renew/install. */
export const RenewCsrResponse = z.object({ csr: z.object({ agent: Pem, updater: Pem }).strict() }).strict();
export type RenewCsrResponse = z.infer<typeof RenewCsrResponse>;

export const RenewInstallRequest = z.object({ certs: z.object({ agent: Pem, updater: Pem }).strict() }).strict();
export type RenewInstallRequest = z.infer<typeof RenewInstallRequest>;

export const RenewInstallResponse = z.object({
  serials: z.object({ agent: z.string(), updater: z.string() }).strict(),
  not_after: z.string(),
}).strict();
export type RenewInstallResponse = z.infer<typeof RenewInstallResponse>;

export const CrlPushRequest = z.object({ crl: z.string().min(1).max(MAX_CRL) }).strict();
export type CrlPushRequest = z.infer<typeof CrlPushRequest>;

export const CrlPushResponse = z.object({ number: z.number().int(), previous: z.number().int().nullable() }).strict();
export type CrlPushResponse = z.infer<typeof CrlPushResponse>;

/** A joined updater's identity routes (served beside updaterApi, master only). */
export const identityApi = {
  crl: defineRoute({ method: "POST", path: "/crl", body: CrlPushRequest, response: CrlPushResponse }),
  renewCsr: defineRoute({ method: "POST", path: "/renew/csr", response: RenewCsrResponse }),
  renewInstall: defineRoute({ method: "POST", path: "/renew/install", body: RenewInstallRequest, response: RenewInstallResponse }),
};
