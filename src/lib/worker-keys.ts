/**
 * The worker's half of issuance: make a key pair and its CSR on the worker
 * (the private key never leaves it), a throwaway self-signed certificate for
 * the join listener, and the check of a certificate the master sends back.
 */
import { createPublicKey } from "node:crypto";
import { DecnetError } from "./errors.ts";
import { DAY_MS, EC_ALG, firstPemBlock, loadX509, privateKeyPem, randomSerial, sha256Hex } from "./x509.ts";

export interface KeyAndCsr {
  keyPem: string;
  csrPem: string;
  /** sha256 of the public key info, hex: how the master and the registry name this key. */
  spki: string;
}

/** A fresh P-256 key and a CSR for it, signed by it (proof of possession). */
export async function makeKeyAndCsr(cn: string): Promise<KeyAndCsr> {
  const x509 = await loadX509();
  const keys = (await crypto.subtle.generateKey(EC_ALG, true, ["sign", "verify"])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: new x509.Name([{ CN: [cn] }]),
    keys,
    signingAlgorithm: EC_ALG,
  });
  return { keyPem: await privateKeyPem(keys.privateKey), csrPem: csr.toString("pem"), spki: sha256Hex(csr.publicKey.rawData) };
}

export interface SelfSigned {
  certPem: string;
  keyPem: string;
  /** sha256 of the certificate's DER, hex: what the join proofs bind. */
  sha256: string;
}

/** A self-signed serverAuth certificate for the join-only listener, valid until `notAfter`. */
export async function makeJoinCert(cn: string, notAfter: Date, now = new Date()): Promise<SelfSigned> {
  const x509 = await loadX509();
  const keys = (await crypto.subtle.generateKey(EC_ALG, true, ["sign", "verify"])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: new x509.Name([{ CN: [cn] }]),
    notBefore: new Date(now.getTime() - DAY_MS),
    notAfter,
    keys,
    signingAlgorithm: EC_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
    ],
  });
  return { certPem: cert.toString("pem"), keyPem: await privateKeyPem(keys.privateKey), sha256: sha256Hex(cert.rawData) };
}

/** The CN of a PEM certificate (e.g. `updater@<host>` names the host). */
export async function certCn(pem: string): Promise<string> {
  const x509 = await loadX509();
  try {
    return new x509.X509Certificate(pem).subjectName.getField("CN")[0] ?? "";
  } catch {
    throw bad("certificate is not an X.509 certificate");
  }
}

/** sha256 of a PEM certificate's DER, hex. */
export async function certSha256(pem: string): Promise<string> {
  return sha256Hex(await firstPemBlock(pem, "certificate"));
}

/** sha256 of the public key info of a private key, hex (matches a certificate's or CSR's). */
export function keySpki(keyPem: string): string {
  return sha256Hex(createPublicKey(keyPem).export({ type: "spki", format: "der" }));
}

export interface ExpectedLeaf {
  cn: string;
  keyPem: string;
  caPem: string;
  now?: Date;
}

const bad = (message: string) => new DecnetError("bad_certificate", message);

/**
 * Checks a certificate the master issued before it replaces anything: signed
 * by the CA, for our key, the CN we asked for, serverAuth only, valid now.
 */
export async function checkIssued(certPem: string, e: ExpectedLeaf): Promise<{ serial: string; notAfter: string }> {
  const x509 = await loadX509();
  const der = await firstPemBlock(certPem, `certificate for ${e.cn}`);
  let cert: InstanceType<typeof x509.X509Certificate>;
  let ca: InstanceType<typeof x509.X509Certificate>;
  try {
    cert = new x509.X509Certificate(der);
    ca = new x509.X509Certificate(e.caPem);
  } catch {
    throw bad(`certificate for ${e.cn} is not an X.509 certificate`);
  }
  const now = e.now ?? new Date();
  let signed = false;
  try {
    signed = cert.issuer === ca.subject && (await cert.verify({ publicKey: ca, signatureOnly: true }));
  } catch {}
  if (!signed) throw bad(`certificate for ${e.cn} is not signed by the CA`);
  if (sha256Hex(cert.publicKey.rawData) !== keySpki(e.keyPem)) throw bad(`certificate for ${e.cn} is for another key than the one made here`);
  const cn = cert.subjectName.getField("CN")[0];
  if (cn !== e.cn) throw bad(`certificate is for CN=${cn ?? "?"}, expected CN=${e.cn}`);
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  if (!eku || eku.usages.length !== 1 || eku.usages[0] !== x509.ExtendedKeyUsage.serverAuth) throw bad(`certificate for ${e.cn} is not serverAuth-only`);
  if (cert.notBefore.getTime() > now.getTime() || cert.notAfter.getTime() <= now.getTime()) {
    throw bad(`certificate for ${e.cn} is not valid now (${cert.notBefore.toISOString()} – ${cert.notAfter.toISOString()})`);
  }
  return { serial: cert.serialNumber.toLowerCase(), notAfter: cert.notAfter.toISOString() };
}
