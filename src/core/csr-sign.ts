/**
 * Signs a worker's CSR (PKCS#10) into its agent or updater certificate. Only
 * the public key is taken from the request, after its signature and key type
 * are checked: CN, SANs and EKU come from the registry, never from the CSR.
 */
import { DecnetError } from "../lib/errors.ts";
import { EC_ALG, firstPemBlock, loadX509, sha256Hex } from "../lib/x509.ts";
import { type Ca, type Issued, signLeaf } from "./ca.ts";

/** A P-256 CSR is ~400 bytes; anything near this is not one of ours. */
export const MAX_CSR_BYTES = 8 * 1024;

export interface CsrSubject {
  role: "agent" | "updater";
  /** The registry's host name: CN `<host>` or `updater@<host>`. */
  host: string;
  /** The registry's SANs for the host. */
  sans: string[];
  now?: Date;
}

export function leafCn(role: "agent" | "updater", host: string): string {
  return role === "agent" ? host : `updater@${host}`;
}

const bad = (message: string) => new DecnetError("bad_certificate", message);

/** The CSR's public key, once its signature and key type are checked. */
export async function csrPublicKey(csrPem: string, what = "CSR"): Promise<{ key: CryptoKey; spki: string }> {
  const x509 = await loadX509();
  const der = await firstPemBlock(csrPem, what, MAX_CSR_BYTES);
  let csr: InstanceType<typeof x509.Pkcs10CertificateRequest>;
  try {
    csr = new x509.Pkcs10CertificateRequest(der);
  } catch {
    throw bad(`${what} is not a PKCS#10 certificate request`);
  }
  const alg = csr.publicKey.algorithm as { name: string; namedCurve?: string };
  if (alg.name !== "ECDSA" || alg.namedCurve !== EC_ALG.namedCurve) {
    throw bad(`${what} has a ${alg.name}${alg.namedCurve ? ` ${alg.namedCurve}` : ""} key; decnet takes ECDSA P-256 only`);
  }
  let ok = false;
  try {
    ok = await csr.verify();
  } catch {}
  if (!ok) throw bad(`${what} signature does not verify: the request was altered or not signed by its key`);
  let key: CryptoKey;
  try {
    key = await csr.publicKey.export(EC_ALG, ["verify"]);
  } catch {
    throw bad(`${what} public key cannot be imported`);
  }
  return { key, spki: sha256Hex(csr.publicKey.rawData) };
}

/** Issues `role`'s certificate for the key in `csrPem`, with what the registry says. */
export async function signCsr(ca: Ca, csrPem: string, s: CsrSubject): Promise<Issued> {
  const { key } = await csrPublicKey(csrPem, `${s.role} CSR`);
  return signLeaf(ca, key, { role: s.role, cn: leafCn(s.role, s.host), sans: s.sans, now: s.now });
}
