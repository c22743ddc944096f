/**
 * CSR signing: whatever a CSR asks for, the certificate carries the
 * registry's CN and SANs and serverAuth only; bad requests are one clear refusal.
 */
import { expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadOrCreateCa } from "../../src/core/ca.ts";
import { csrPublicKey, signCsr } from "../../src/core/csr-sign.ts";
import { homePaths } from "../../src/lib/paths.ts";
import { checkIssued, makeKeyAndCsr } from "../../src/lib/worker-keys.ts";
import { EC_ALG, loadX509 } from "../../src/lib/x509.ts";

const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";

function tempHome() {
  const dir = mkdtempSync(join(tmpdir(), "decnet-csr-"));
  return { paths: homePaths(dir), [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A CSR that asks for everything it should not get. */
async function greedyCsr(alg: { name: string; namedCurve?: string; modulusLength?: number; publicExponent?: Uint8Array; hash?: string } = EC_ALG) {
  const x509 = await loadX509();
  const keys = (await crypto.subtle.generateKey(alg as Parameters<typeof crypto.subtle.generateKey>[0], true, ["sign", "verify"])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: "CN=decnet-master",
    keys,
    signingAlgorithm: alg.name === "ECDSA" ? EC_ALG : { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
    extensions: [
      new x509.SubjectAlternativeNameExtension([{ type: "dns", value: "evil.example" }, { type: "ip", value: "10.9.9.9" }]),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth, x509.ExtendedKeyUsage.serverAuth]),
    ],
  });
  return csr;
}

test("a CSR asking for other SANs, another CN and clientAuth gets only what the registry says", async () => {
  using home = tempHome();
  const ca = await loadOrCreateCa(home.paths);
  const csr = await greedyCsr();
  const agent = await signCsr(ca, csr.toString("pem"), { role: "agent", host: "edge-1", sans: ["127.0.9.1", "edge-1.example.net"] });
  const updater = await signCsr(ca, csr.toString("pem"), { role: "updater", host: "edge-1", sans: ["127.0.9.1"] });
  const see = (pem: string) => {
    const c = new X509Certificate(pem);
    const days = Math.round((Date.parse(c.validTo) - Date.parse(c.validFrom)) / 86_400_000);
    return { subject: c.subject, san: c.subjectAltName, eku: c.keyUsage, chains: c.verify(new X509Certificate(ca.pem).publicKey), days };
  };
  expect({ agent: see(agent.certPem), updater: see(updater.certPem), roles: [agent.role, updater.role] }).toEqual({
    agent: { subject: "CN=edge-1", san: "IP Address:127.0.9.1, DNS:edge-1.example.net", eku: [SERVER_AUTH], chains: true, days: 91 },
    updater: { subject: "CN=updater@edge-1", san: "IP Address:127.0.9.1", eku: [SERVER_AUTH], chains: true, days: 91 },
    roles: ["agent", "updater"],
  });
});

test("the worker accepts the certificate made from its own CSR, and refuses one for another key or CN", async () => {
  using home = tempHome();
  const ca = await loadOrCreateCa(home.paths);
  const mine = await makeKeyAndCsr("edge-2");
  const other = await makeKeyAndCsr("edge-2");
  const issued = await signCsr(ca, mine.csrPem, { role: "agent", host: "edge-2", sans: ["127.0.9.2"] });
  const outcome = async (p: Promise<unknown>) => p.then(() => "ok", (e: Error) => e.message);
  expect({
    ok: await checkIssued(issued.certPem, { cn: "edge-2", keyPem: mine.keyPem, caPem: ca.pem }),
    spki: issued.spki === mine.spki,
    otherKey: await outcome(checkIssued(issued.certPem, { cn: "edge-2", keyPem: other.keyPem, caPem: ca.pem })),
    otherCn: await outcome(checkIssued(issued.certPem, { cn: "updater@edge-2", keyPem: mine.keyPem, caPem: ca.pem })),
    otherCa: await outcome(checkIssued(issued.certPem, { cn: "edge-2", keyPem: mine.keyPem, caPem: (await loadOrCreateCa(homePaths(join(home.paths.home, "other")))).pem })),
  }).toEqual({
    ok: { serial: issued.serial, notAfter: issued.notAfter },
    spki: true,
    otherKey: "certificate for edge-2 is for another key than the one made here",
    otherCn: "certificate is for CN=edge-2, expected CN=updater@edge-2",
    otherCa: "certificate for edge-2 is not signed by the CA",
  });
});

test("a tampered, foreign-key, garbage or oversized CSR is one bad_certificate refusal", async () => {
  using home = tempHome();
  const ca = await loadOrCreateCa(home.paths);
  const x509 = await loadX509();
  const good = await greedyCsr();
  const der = new Uint8Array(good.rawData.slice(0));
  der[der.length - 5]! ^= 0x01; // inside the signature
  const tampered = x509.PemConverter.encode(der.buffer, "CERTIFICATE REQUEST");
  const rsa = await greedyCsr({ name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" });
  const p384 = await (async () => {
    const alg = { name: "ECDSA", namedCurve: "P-384", hash: "SHA-384" };
    const keys = (await crypto.subtle.generateKey(alg, true, ["sign", "verify"])) as CryptoKeyPair;
    return (await x509.Pkcs10CertificateRequestGenerator.create({ name: "CN=x", keys, signingAlgorithm: alg })).toString("pem");
  })();
  const refusal = (pem: string) =>
    signCsr(ca, pem, { role: "agent", host: "h", sans: ["127.0.0.1"] }).then(
      () => "signed",
      (e: { code: string; message: string }) => `${e.code}: ${e.message}`,
    );
  expect({
    tampered: await refusal(tampered),
    rsa: await refusal(rsa.toString("pem")),
    p384: await refusal(p384),
    garbage: await refusal("hello"),
    notCsr: await refusal(ca.pem),
    huge: await refusal(`-----BEGIN CERTIFICATE REQUEST-----\n${"A".repeat(9000)}\n-----END CERTIFICATE REQUEST-----\n`),
  }).toEqual({
    tampered: "bad_certificate: agent CSR signature does not verify: the request was altered or not signed by its key",
    rsa: "bad_certificate: agent CSR has a RSASSA-PKCS1-v1_5 key; decnet takes ECDSA P-256 only",
    p384: "bad_certificate: agent CSR has a ECDSA P-384 key; decnet takes ECDSA P-256 only",
    garbage: "bad_certificate: agent CSR is not PEM",
    notCsr: "bad_certificate: agent CSR is not a PKCS#10 certificate request",
    huge: "bad_certificate: agent CSR is larger than 8192 bytes",
  });
  expect((await csrPublicKey(good.toString("pem"))).spki).toMatch(/^[0-9a-f]{64}$/);
});
