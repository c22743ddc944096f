/**
 * The decnet CA: created on first use at ~/.decnet/ca; issues the master
 * identity (clientAuth only) and agent/updater certificates (serverAuth only).
 * Imported lazily: @peculiar/x509 costs ~40 ms to load.
 */
import type * as X509 from "@peculiar/x509";
import { existsSync, readFileSync } from "node:fs";
import { isIP } from "node:net";
import { writeFileAtomic } from "../lib/atomic.ts";
import { DecnetError } from "../lib/errors.ts";
import { type BundlePaths, ensurePrivateDir, homePaths } from "../lib/paths.ts";

// The polyfill must run before @peculiar/x509 evaluates; static imports are
// hoisted and the bundler may order them otherwise, so load them in sequence.
await import("reflect-metadata");
const x509: typeof X509 = await import("@peculiar/x509");
x509.cryptoProvider.set(crypto);

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const DAY = 86_400_000;
const CA_DAYS = 3650;
const LEAF_DAYS = 825;
export const MASTER_CN = "decnet-master";

export interface Ca {
  cert: X509.X509Certificate;
  key: CryptoKey;
  pem: string;
}

function serial(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[0] = b[0]! & 0x7f; // positive
  return Buffer.from(b).toString("hex");
}

async function keyToPem(key: CryptoKey): Promise<string> {
  const der = await crypto.subtle.exportKey("pkcs8", key);
  return x509.PemConverter.encode(der, "PRIVATE KEY");
}

async function pemToKey(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decode(pem)[0];
  if (!der) throw new DecnetError("failed", "CA key file holds no PEM block");
  return crypto.subtle.importKey("pkcs8", der, ALG, true, ["sign"]);
}

/** Loads the CA from DECNET_HOME, creating it (0700 dir, 0600 key) if absent. */
export async function loadOrCreateCa(paths = homePaths()): Promise<Ca> {
  if (existsSync(paths.caCrt) && existsSync(paths.caKey)) {
    const pem = readFileSync(paths.caCrt, "utf8");
    return { cert: new x509.X509Certificate(pem), key: await pemToKey(readFileSync(paths.caKey, "utf8")), pem };
  }
  ensurePrivateDir(paths.caDir);
  const keys = (await crypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: "CN=decnet CA",
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + CA_DAYS * DAY),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pem = cert.toString("pem");
  writeFileAtomic(paths.caKey, await keyToPem(keys.privateKey), 0o600);
  writeFileAtomic(paths.caCrt, pem, 0o644);
  return { cert, key: keys.privateKey, pem };
}

export type LeafRole = "master" | "agent" | "updater";

export interface IssueOptions {
  role: LeafRole;
  cn: string;
  /** DNS names and IP addresses; IPs become IP SANs. */
  sans?: string[];
}

/** Issues a leaf with an explicit EKU: a certificate with none passes as a client. */
export async function issue(ca: Ca, opts: IssueOptions): Promise<{ certPem: string; keyPem: string }> {
  const keys = (await crypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as CryptoKeyPair;
  const now = Date.now();
  const eku = opts.role === "master" ? x509.ExtendedKeyUsage.clientAuth : x509.ExtendedKeyUsage.serverAuth;
  const sans = [...new Set(opts.sans ?? [])];
  const extensions: X509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([eku], false),
    await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  if (sans.length > 0) {
    extensions.push(
      new x509.SubjectAlternativeNameExtension(
        sans.map((v) => (isIP(v) ? { type: "ip" as const, value: v } : { type: "dns" as const, value: v })),
      ),
    );
  }
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${opts.cn}`,
    issuer: ca.cert.subject,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + LEAF_DAYS * DAY),
    signingKey: ca.key,
    publicKey: keys.publicKey,
    signingAlgorithm: ALG,
    extensions,
  });
  return { certPem: cert.toString("pem"), keyPem: await keyToPem(keys.privateKey) };
}

/** Writes ca.crt + <role>.crt + <role>.key into a 0700 folder, key 0600. */
export async function writeBundle(ca: Ca, bundle: BundlePaths, opts: IssueOptions): Promise<void> {
  const { certPem, keyPem } = await issue(ca, opts);
  ensurePrivateDir(bundle.dir);
  writeFileAtomic(bundle.key, keyPem, 0o600);
  writeFileAtomic(bundle.crt, certPem, 0o644);
  writeFileAtomic(bundle.ca, ca.pem, 0o644);
}

/** Creates the master identity (and the CA if needed); see core/identity.ts. */
export async function createMasterIdentity(paths = homePaths()): Promise<BundlePaths> {
  const m = paths.master;
  const ca = await loadOrCreateCa(paths);
  await writeBundle(ca, m, { role: "master", cn: MASTER_CN });
  return m;
}
