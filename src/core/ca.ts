/**
 * The decnet CA: created on first use at ~/.decnet/ca; issues the master and
 * operator identities (clientAuth only) and agent/updater certificates
 * (serverAuth only). Imported lazily: @peculiar/x509 costs ~40 ms to load.
 */
import type * as X509 from "@peculiar/x509";
import { existsSync, readFileSync } from "node:fs";
import { isIP } from "node:net";
import { writeFileAtomic } from "../lib/atomic.ts";
import { DecnetError } from "../lib/errors.ts";
import { type BundlePaths, ensurePrivateDir, homePaths } from "../lib/paths.ts";
import { DAY_MS, EC_ALG, loadX509, privateKeyPem, randomSerial, sha256Hex } from "../lib/x509.ts";
// Lifetimes live in identity.ts, which every command loads without this library.
import { LEAF_DAYS } from "./identity.ts";

const x509 = await loadX509();

const CA_DAYS = 3650;
export { LEAF_DAYS, RENEW_WITHIN_DAYS } from "./identity.ts";
/** Backdating covers a worker whose clock is behind the master's. */
const BACKDATE_MS = DAY_MS;
export const MASTER_CN = "decnet-master";

export interface Ca {
  cert: X509.X509Certificate;
  key: CryptoKey;
  pem: string;
  /** sha256 of the CA certificate's DER, hex: what a join token pins. */
  sha256: string;
}

export type LeafRole = "master" | "operator" | "agent" | "updater";

/** One certificate as issued: what the registry records about it. */
export interface Issued {
  certPem: string;
  serial: string;
  cn: string;
  role: LeafRole;
  notBefore: string;
  notAfter: string;
  /** sha256 of the subject public key info, hex. */
  spki: string;
}

async function pemToKey(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decode(pem)[0];
  if (!der) throw new DecnetError("failed", "CA key file holds no PEM block");
  return crypto.subtle.importKey("pkcs8", der, EC_ALG, true, ["sign"]);
}

function caFrom(cert: X509.X509Certificate, key: CryptoKey): Ca {
  return { cert, key, pem: cert.toString("pem"), sha256: sha256Hex(cert.rawData) };
}

/** Loads the CA from DECNET_HOME, creating it (0700 dir, 0600 key) if absent. */
export async function loadOrCreateCa(paths = homePaths()): Promise<Ca> {
  if (existsSync(paths.caCrt) && existsSync(paths.caKey)) {
    const cert = new x509.X509Certificate(readFileSync(paths.caCrt, "utf8"));
    return caFrom(cert, await pemToKey(readFileSync(paths.caKey, "utf8")));
  }
  // Half a CA is never replaced by a new one: every bundle already issued
  // chains to the old certificate, and workers would stop trusting this master.
  if (existsSync(paths.caCrt) || existsSync(paths.caKey)) {
    const [have, lack] = existsSync(paths.caCrt) ? [paths.caCrt, paths.caKey] : [paths.caKey, paths.caCrt];
    throw new DecnetError("failed", `${lack} is missing next to ${have}: refusing to create a new CA, which the enrolled workers would not trust`, {
      hint: `restore ${lack} from a backup (or move ${have} away to start a new fleet from scratch)`,
    });
  }
  ensurePrivateDir(paths.caDir);
  const keys = (await crypto.subtle.generateKey(EC_ALG, true, ["sign", "verify"])) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: "CN=decnet CA",
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + CA_DAYS * DAY_MS),
    keys,
    signingAlgorithm: EC_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  writeFileAtomic(paths.caKey, await privateKeyPem(keys.privateKey), 0o600);
  writeFileAtomic(paths.caCrt, cert.toString("pem"), 0o644);
  return caFrom(cert, keys.privateKey);
}

export interface LeafOptions {
  role: LeafRole;
  cn: string;
  /** DNS names and IP addresses; IPs become IP SANs. */
  sans?: string[];
  now?: Date;
  /** Lifetime in days; default LEAF_DAYS. */
  days?: number;
}

/** Signs a leaf for `publicKey` with an explicit EKU: a certificate with none passes as a client. */
export async function signLeaf(ca: Ca, publicKey: CryptoKey, o: LeafOptions): Promise<Issued> {
  const now = (o.now ?? new Date()).getTime();
  const client = o.role === "master" || o.role === "operator";
  const eku = client ? x509.ExtendedKeyUsage.clientAuth : x509.ExtendedKeyUsage.serverAuth;
  const sans = [...new Set(o.sans ?? [])];
  const extensions: X509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([eku], false),
    await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
    await x509.SubjectKeyIdentifierExtension.create(publicKey),
  ];
  if (sans.length > 0) {
    extensions.push(
      new x509.SubjectAlternativeNameExtension(
        sans.map((v) => (isIP(v) ? { type: "ip" as const, value: v } : { type: "dns" as const, value: v })),
      ),
    );
  }
  const serial = randomSerial();
  const notBefore = new Date(now - BACKDATE_MS);
  const notAfter = new Date(now + (o.days ?? LEAF_DAYS) * DAY_MS);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject: new x509.Name([{ CN: [o.cn] }]),
    issuer: ca.cert.subject,
    notBefore,
    notAfter,
    signingKey: ca.key,
    publicKey,
    signingAlgorithm: EC_ALG,
    extensions,
  });
  return {
    certPem: cert.toString("pem"),
    serial,
    cn: o.cn,
    role: o.role,
    notBefore: cert.notBefore.toISOString(),
    notAfter: cert.notAfter.toISOString(),
    spki: sha256Hex(cert.publicKey.rawData),
  };
}

/**
 * Issues a leaf with a key made here, on the master: for the master and
 * operator identities, and for the scp way of enrolling (`swarm enroll`
 * without --join). A joining worker makes its own keys (core/csr-sign.ts).
 */
export async function issue(ca: Ca, o: LeafOptions): Promise<Issued & { keyPem: string }> {
  const keys = (await crypto.subtle.generateKey(EC_ALG, true, ["sign", "verify"])) as CryptoKeyPair;
  const issued = await signLeaf(ca, keys.publicKey, o);
  return { ...issued, keyPem: await privateKeyPem(keys.privateKey) };
}

/** Writes ca.crt + <role>.crt + <role>.key into a 0700 folder, key 0600. */
export async function writeBundle(ca: Ca, bundle: BundlePaths, o: LeafOptions): Promise<Issued> {
  const { keyPem, ...issued } = await issue(ca, o);
  ensurePrivateDir(bundle.dir);
  writeFileAtomic(bundle.key, keyPem, 0o600);
  writeFileAtomic(bundle.crt, issued.certPem, 0o644);
  writeFileAtomic(bundle.ca, ca.pem, 0o644);
  return issued;
}

/** Reads a certificate's serial, CN and expiry (e.g. the master identity on disk). */
export function describeCert(pem: string): { serial: string; cn: string; notAfter: string; spki: string } {
  const c = new x509.X509Certificate(pem);
  return { serial: c.serialNumber, cn: c.subjectName.getField("CN")[0] ?? "", notAfter: c.notAfter.toISOString(), spki: sha256Hex(c.publicKey.rawData) };
}

/** Creates the master identity (and the CA if needed); see core/identity.ts. */
export async function createMasterIdentity(paths = homePaths()): Promise<BundlePaths> {
  const m = paths.master;
  const ca = await loadOrCreateCa(paths);
  const issued = await writeBundle(ca, m, { role: "master", cn: MASTER_CN });
  const { IdentityStore } = await import("./registry-identity.ts");
  using store = new IdentityStore(paths.db);
  await store.recordIssued(issued, MASTER_CN);
  return m;
}
