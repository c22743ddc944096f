/**
 * The Bun 1.4.5 behaviours the identity design stands on, kept as tests so an
 * upgrade that changes one is noticed: how a running server can change
 * certificates, and what a CRL Bun cannot use does to every client.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { type Ca, type Issued, issue, loadOrCreateCa } from "../../src/core/ca.ts";
import { revoke } from "../../src/core/crl.ts";
import { IdentityStore } from "../../src/core/registry-identity.ts";
import { homePaths } from "../../src/lib/paths.ts";

type Leaf = Issued & { keyPem: string };

async function pki() {
  const dir = mkdtempSync(join(tmpdir(), "decnet-facts-"));
  const paths = homePaths(dir);
  const ca = await loadOrCreateCa(paths);
  const store = new IdentityStore(paths.db);
  const [a, b, client, other] = await Promise.all([
    issue(ca, { role: "agent", cn: "edge-1", sans: ["127.0.0.1"] }),
    issue(ca, { role: "agent", cn: "edge-1", sans: ["127.0.0.1"] }),
    issue(ca, { role: "master", cn: "decnet-master" }),
    issue(ca, { role: "operator", cn: "operator@ci" }),
  ]);
  for (const c of [a, b, client, other]) await store.recordIssued(c, c.cn);
  return {
    ca, store, paths, a, b, client, other,
    [Symbol.dispose]() {
      store[Symbol.dispose]();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const serverTls = (ca: Ca, leaf: Leaf, crl?: string) => ({ cert: leaf.certPem, key: leaf.keyPem, ca: ca.pem, requestCert: true, rejectUnauthorized: true, ...(crl ? { crl } : {}) });

/** The serial of the certificate a server presents, or "no answer". */
function servedSerial(port: number, ca: Ca, client: Leaf): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: "127.0.0.1", port, ca: ca.pem, cert: client.certPem, key: client.keyPem, checkServerIdentity: () => undefined }, () => {
      resolve(s.getPeerCertificate().serialNumber.toLowerCase());
      s.end();
    });
    s.on("error", () => resolve("no answer"));
  });
}

async function get(port: number, ca: Ca, client: Leaf): Promise<string> {
  try {
    const r = await fetch(`https://127.0.0.1:${port}/`, { tls: { cert: client.certPem, key: client.keyPem, ca: ca.pem, checkServerIdentity: () => undefined }, signal: AbortSignal.timeout(5_000) } as RequestInit);
    return `${r.status} ${await r.text()}`;
  } catch {
    return "no answer";
  }
}

test("server.reload({tls}) changes the handler but not the certificate or the CRL", async () => {
  using p = await pki();
  const crl = (await revoke(p.ca, p.store, [p.other.serial], "operator-revoked", { file: p.paths.crl })).pem;
  await using srv = Bun.serve({ hostname: "127.0.0.1", port: 0, tls: serverTls(p.ca, p.a), fetch: () => new Response("v1") });
  srv.reload({ tls: serverTls(p.ca, p.b, crl), fetch: () => new Response("v2") } as Parameters<typeof srv.reload>[0]);
  expect({ serial: await servedSerial(srv.port!, p.ca, p.client), revokedClient: await get(srv.port!, p.ca, p.other) }).toEqual({ serial: p.a.serial, revokedClient: "200 v2" });
});

test("reusePort: a second listener with new certificates takes the port, the first stops without dropping its request, and a plain bind is refused", async () => {
  using p = await pki();
  const crl = (await revoke(p.ca, p.store, [p.other.serial], "operator-revoked", { file: p.paths.crl })).pem;
  let release!: () => void;
  let entered!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const inHandler = new Promise<void>((r) => (entered = r));
  const first = Bun.serve({
    hostname: "127.0.0.1", port: 0, reusePort: true, tls: serverTls(p.ca, p.a),
    fetch: async () => { entered(); await held; return new Response("old"); },
  });
  const port = first.port!;
  const inFlight = get(port, p.ca, p.client);
  await inHandler; // the request is in the old listener's handler before the swap
  await using _second = Bun.serve({ hostname: "127.0.0.1", port, reusePort: true, tls: serverTls(p.ca, p.b, crl), fetch: () => new Response("new") });
  let plainBind = "bound";
  try {
    Bun.serve({ hostname: "127.0.0.1", port, tls: serverTls(p.ca, p.a), fetch: () => new Response("") }).stop(true);
  } catch (e) {
    plainBind = String((e as { code?: string }).code);
  }
  first.stop(false);
  release();
  expect({
    inFlight: await inFlight,
    serials: await Promise.all([0, 1, 2, 3].map(() => servedSerial(port, p.ca, p.client))),
    revokedClient: await get(port, p.ca, p.other),
    plainBind,
  }).toEqual({ inFlight: "200 old", serials: [p.b.serial, p.b.serial, p.b.serial, p.b.serial], revokedClient: "no answer", plainBind: "EADDRINUSE" });
});

test("Bun.serve will not start with a CRL it cannot decode: garbage, or an entry with an empty extension list", async () => {
  using p = await pki();
  const x509 = await (await import("../../src/lib/x509.ts")).loadX509();
  // What @peculiar/x509 writes for an entry without a reason code (core/crl.ts always gives one).
  const noReason = await x509.X509CrlGenerator.create({
    issuer: p.ca.cert.subject, thisUpdate: new Date(Date.now() - 60_000), nextUpdate: new Date(Date.now() + 86_400_000),
    signingKey: p.ca.key, signingAlgorithm: { name: "ECDSA", hash: "SHA-256" }, entries: [{ serialNumber: p.other.serial, revocationDate: new Date() }],
  });
  const starts = (crl: string) => {
    try {
      Bun.serve({ hostname: "127.0.0.1", port: 0, tls: serverTls(p.ca, p.a, crl), fetch: () => new Response("") }).stop(true);
      return "started";
    } catch (e) {
      return String((e as { code?: string }).code);
    }
  };
  expect({
    garbage: starts("not a crl"),
    emptyEntryExtensions: starts(x509.PemConverter.encode(noReason.rawData, "X509 CRL")),
    peculiarLabel: starts(noReason.toString("pem")),
  }).toEqual({ garbage: "ERR_OSSL_PEM_NO_START_LINE", emptyEntryExtensions: "ERR_OSSL_ASN1_DECODE_ERROR", peculiarLabel: "ERR_OSSL_PEM_NO_START_LINE" });
});

test("a CRL past its next-update, still ahead of the clock, or another CA's makes Bun refuse every client", async () => {
  using p = await pki();
  const expired = (await revoke(p.ca, p.store, [p.other.serial], "operator-revoked", { file: p.paths.crl, now: new Date(Date.now() - 91 * 86_400_000) })).pem;
  const ahead = (await revoke(p.ca, p.store, [p.other.serial], "operator-revoked", { file: p.paths.crl, now: new Date(Date.now() + 3 * 86_400_000) })).pem;
  using q = await pki();
  const foreign = (await revoke(q.ca, q.store, [q.other.serial], "operator-revoked", { file: q.paths.crl })).pem;
  const results: Record<string, string> = {};
  for (const [name, crl] of Object.entries({ expired, ahead, foreign })) {
    await using srv = Bun.serve({ hostname: "127.0.0.1", port: 0, tls: serverTls(p.ca, p.a, crl), fetch: () => new Response("hi") });
    results[name] = await get(srv.port!, p.ca, p.client);
  }
  expect(results).toEqual({ expired: "no answer", ahead: "no answer", foreign: "no answer" });
});
