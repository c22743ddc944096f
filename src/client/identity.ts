/** Typed calls to a joined updater's identity routes (renew, CRL), over mTLS as the master, via `identityApi`. */
import type { Bundle } from "../lib/tls.ts";
import { identityApi, type RenewInstallRequest } from "../protocol/identity.ts";
import { call, type Endpoint } from "./http.ts";

type Opts = { timeoutMs: number; bundle?: Bundle };

export const renewCsr = (e: Endpoint, o: Opts) => call(e, identityApi.renewCsr, o);

export const renewInstall = (e: Endpoint, certs: RenewInstallRequest["certs"], o: Opts) => call(e, identityApi.renewInstall, { ...o, json: { certs } });

export const pushCrl = (e: Endpoint, crl: string, o: Opts) => call(e, identityApi.crl, { ...o, json: { crl } });
