/**
 * The master's CRL (numbered, signed, rebuilt from the registry) and a
 * daemon's acceptance rule (`checkCrlUpdate`); then a real handshake: a
 * Bun.serve given that CRL does not answer a revoked client certificate.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { issue, loadOrCreateCa, signLeaf } from "../../src/core/ca.ts";
import { publishCrl, revoke } from "../../src/core/crl.ts";
import { IdentityStore } from "../../src/core/registry-identity.ts";
import { CRL_PEM_LABEL, checkCrlUpdate, readCrl } from "../../src/lib/crl.ts";
import { homePaths } from "../../src/lib/paths.ts";
import { loadX509, privateKeyPem } from "../../src/lib/x509.ts";

const DAY = 86_400_000;

function tempHome() {
  const dir = mkdtempSync(join(tmpdir(), "decnet-crl-"));
  const paths = homePaths(dir);
  return { paths, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

const outcome = (p: Promise<{ number: number }>) => p.then((c) => `ok #${c.number}`, (e: { code: string; message: string }) => `${e.code}: ${e.message}`);

test("each revocation publishes a higher-numbered CRL listing every revoked, unexpired serial", async () => {
  using home = tempHome();
  const ca = await loadOrCreateCa(home.paths);
  using store = new IdentityStore(home.paths.db, "tester@here");
  const a = await issue(ca, { role: "operator", cn: "operator@ci" });
  const b = await issue(ca, { role: "agent", cn: "edge-1", sans: ["127.0.0.1"] });
  await store.recordIssued(a, "ci");
  await store.recordIssued(b, "edge-1");
  const first = await publishCrl(ca, store, { file: home.paths.crl });
  const second = await revoke(ca, store, [a.serial], "operator-revoked", { file: home.paths.crl });
  const again = await revoke(ca, store, [a.serial, b.serial], "decommissioned", { file: home.paths.crl });
  const onDisk = await readCrl(await Bun.file(home.paths.crl).text(), ca.pem);
  const life = Math.round(((onDisk.nextUpdate?.getTime() ?? 0) - Date.now()) / DAY);
  expect({
    numbers: [first.number, second.number, again.number, onDisk.number],
    revoked: [second.revoked, again.revoked],
    listed: [first.serials, second.serials, [...again.serials].sort()],
    onDisk: [...onDisk.serials].sort(),
    life,
    records: (await store.certs("ci", ["operator"])).map((r) => ({ revoked_by: r.revoked_by, reason: r.revoke_reason })),
  }).toEqual({
    numbers: [1, 2, 3, 3],
    revoked: [[a.serial], [b.serial]],
    listed: [[], [a.serial], [a.serial, b.serial].sort()],
    onDisk: [a.serial, b.serial].sort(),
    life: 90,
    records: [{ revoked_by: "tester@here", reason: "operator-revoked" }],
  });
});

test("the CRL number never goes back, even when the registry forgot it", async () => {
  using home = tempHome();
  const ca = await loadOrCreateCa(home.paths);
  {
    using store = new IdentityStore(home.paths.db);
    for (let i = 0; i < 4; i++) await publishCrl(ca, store, { file: home.paths.crl });
  }
  rmSync(home.paths.db);
  using fresh = new IdentityStore(home.paths.db);
  expect((await publishCrl(ca, fresh, { file: home.paths.crl })).number).toBe(5);
});

test("checkCrlUpdate takes only a newer CRL of this CA that Bun can load", async () => {
  using home = tempHome();
  const ca = await loadOrCreateCa(home.paths);
  const other = await loadOrCreateCa(homePaths(join(home.paths.home, "other")));
  using store = new IdentityStore(home.paths.db);
  using otherStore = new IdentityStore(join(home.paths.home, "other", "swarm.db"));
  const c1 = (await publishCrl(ca, store, { file: home.paths.crl })).pem;
  const c2 = (await publishCrl(ca, store, { file: home.paths.crl })).pem;
  const foreign = (await publishCrl(other, otherStore, { file: join(home.paths.home, "other", "crl.pem") })).pem;
  const now = new Date();
  const x509 = await loadX509();
  const broken = x509.PemConverter.encode(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01]).buffer, CRL_PEM_LABEL);
  expect({
    first: await outcome(checkCrlUpdate(null, c1, ca.pem)),
    newer: await outcome(checkCrlUpdate(c1, c2, ca.pem)),
    older: await outcome(checkCrlUpdate(c2, c1, ca.pem)),
    same: await outcome(checkCrlUpdate(c2, c2, ca.pem)),
    foreign: await outcome(checkCrlUpdate(c1, foreign, ca.pem)),
    expired: await outcome(checkCrlUpdate(null, c2, ca.pem, new Date(now.getTime() + 91 * DAY))),
    ahead: await outcome(checkCrlUpdate(null, c2, ca.pem, new Date(now.getTime() - 2 * DAY))),
    garbage: await outcome(checkCrlUpdate(c1, "not a crl", ca.pem)),
    broken: await outcome(checkCrlUpdate(c1, broken, ca.pem)),
    heldUnreadable: await outcome(checkCrlUpdate("junk", c1, ca.pem)),
  }).toEqual({
    first: "ok #1",
    newer: "ok #2",
    older: "stale_crl: CRL #1 is not newer than CRL #2 held here",
    same: "stale_crl: CRL #2 is not newer than CRL #2 held here",
    foreign: "bad_certificate: CRL is not signed by this CA (CN=decnet CA)",
    expired: expect.stringMatching(/^stale_crl: CRL #2 expired at /),
    ahead: expect.stringMatching(/^bad_certificate: CRL #2 is not valid before /),
    garbage: "bad_certificate: CRL is not PEM",
    broken: "bad_certificate: CRL is not a DER certificate revocation list",
    heldUnreadable: "ok #1",
  });
});

/** One HTTPS GET with a client identity; "no answer" when the server drops the handshake. */
async function call(port: number, client: { certPem: string; keyPem: string }, caPem: string): Promise<string> {
  try {
    const r = await fetch(`https://127.0.0.1:${port}/`, {
      tls: { cert: client.certPem, key: client.keyPem, ca: caPem, checkServerIdentity: () => undefined },
      signal: AbortSignal.timeout(5_000),
    } as RequestInit);
    return `${r.status} ${await r.text()}`;
  } catch (e) {
    return `no answer (${(e as { code?: string }).code})`;
  }
}

test("a Bun.serve given the published CRL refuses a revoked client certificate in the handshake and serves a valid one", async () => {
  using home = tempHome();
  const ca = await loadOrCreateCa(home.paths);
  using store = new IdentityStore(home.paths.db);
  const keys = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
  const server = await signLeaf(ca, keys.publicKey, { role: "agent", cn: "edge-1", sans: ["127.0.0.1"] });
  const serverKey = await privateKeyPem(keys.privateKey);
  const oldMaster = await issue(ca, { role: "master", cn: "decnet-master" });
  const newMaster = await issue(ca, { role: "master", cn: "decnet-master" });
  const ci = await issue(ca, { role: "operator", cn: "operator@ci" });
  for (const c of [oldMaster, newMaster]) await store.recordIssued(c, "decnet-master");
  await store.recordIssued(ci, "ci");
  const crl = await revoke(ca, store, [oldMaster.serial, ci.serial], "superseded", { file: home.paths.crl });
  await using srv = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    tls: { cert: server.certPem, key: serverKey, ca: ca.pem, requestCert: true, rejectUnauthorized: true, crl: crl.pem },
    fetch: () => new Response("hello"),
  });
  expect({
    newMaster: await call(srv.port!, newMaster, ca.pem),
    oldMaster: await call(srv.port!, oldMaster, ca.pem),
    revokedOperator: await call(srv.port!, ci, ca.pem),
  }).toEqual({ newMaster: "200 hello", oldMaster: "no answer (ECONNRESET)", revokedOperator: "no answer (ECONNRESET)" });
});
