/**
 * The master identity over time: its expiry read without an X.509 library,
 * renewed by any command when due, and rotate-master revoking every older
 * master certificate, including one issued before serials were recorded.
 */
import { expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadOrCreateCa, MASTER_CN, writeBundle } from "../../src/core/ca.ts";
import { ensureMasterIdentity } from "../../src/core/identity.ts";
import { replaceMasterIdentity } from "../../src/core/master-identity.ts";
import { IdentityStore } from "../../src/core/registry-identity.ts";
import { certValidity, daysLeft } from "../../src/lib/cert-expiry.ts";
import { readCrl } from "../../src/lib/crl.ts";
import { homePaths } from "../../src/lib/paths.ts";

function tempHome() {
  const dir = mkdtempSync(join(tmpdir(), "decnet-master-"));
  return { paths: homePaths(dir), [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

const serialOf = (file: string) => new X509Certificate(readFileSync(file)).serialNumber.toLowerCase();

test("certValidity reads UTCTime and GeneralizedTime dates as node:crypto does", async () => {
  using home = tempHome();
  const ca = await loadOrCreateCa(home.paths);
  const short = await writeBundle(ca, home.paths.master, { role: "master", cn: MASTER_CN, days: 10 });
  const long = await writeBundle(ca, home.paths.master, { role: "master", cn: MASTER_CN, days: 40_000 }); // past 2050: GeneralizedTime
  const viaNode = (pem: string) => {
    const c = new X509Certificate(pem);
    return { notBefore: new Date(c.validFrom).toISOString(), notAfter: new Date(c.validTo).toISOString() };
  };
  const ours = (pem: string) => {
    const v = certValidity(pem);
    return { notBefore: v.notBefore.toISOString(), notAfter: v.notAfter.toISOString() };
  };
  expect({ short: ours(short.certPem), long: ours(long.certPem), ca: ours(ca.pem), days: daysLeft(short.certPem) }).toEqual({
    short: viaNode(short.certPem),
    long: viaNode(long.certPem),
    ca: viaNode(ca.pem),
    days: 9,
  });
  expect(() => certValidity("nothing here")).toThrow("no PEM certificate");
});

test("any swarm command renews a master identity with 30 or fewer days left, and leaves a fresher one alone", async () => {
  using home = tempHome();
  const ca = await loadOrCreateCa(home.paths);
  await writeBundle(ca, home.paths.master, { role: "master", cn: MASTER_CN, days: 60 });
  const fresh = serialOf(home.paths.master.crt);
  await ensureMasterIdentity(home.paths);
  const kept = serialOf(home.paths.master.crt);
  await writeBundle(ca, home.paths.master, { role: "master", cn: MASTER_CN, days: 20 });
  const due = serialOf(home.paths.master.crt);
  await ensureMasterIdentity(home.paths);
  const renewed = serialOf(home.paths.master.crt);
  using store = new IdentityStore(home.paths.db);
  expect({
    kept: kept === fresh,
    renewed: renewed !== due,
    daysLeft: daysLeft(readFileSync(home.paths.master.crt, "utf8")),
    // Renewal is not revocation: the old certificate expires on its own.
    revoked: (await store.certs(MASTER_CN, ["master"])).filter((c) => c.revoked_at).length,
    events: (await store.events(MASTER_CN)).map((e) => e.action),
  }).toEqual({ kept: true, renewed: true, daysLeft: 89, revoked: 0, events: ["renew-master"] });
});

test("rotate-master revokes every older master certificate, recorded or not, and keeps only the new one valid", async () => {
  using home = tempHome();
  const ca = await loadOrCreateCa(home.paths);
  // A master identity from before serials were recorded.
  await writeBundle(ca, home.paths.master, { role: "master", cn: MASTER_CN });
  const legacy = serialOf(home.paths.master.crt);
  const first = await replaceMasterIdentity({ paths: home.paths, revokeOld: true });
  const second = await replaceMasterIdentity({ paths: home.paths, revokeOld: true });
  const crl = await readCrl(readFileSync(home.paths.crl, "utf8"), ca.pem);
  expect({
    first: first.revoked,
    second: second.revoked,
    onDisk: serialOf(home.paths.master.crt),
    listed: [...crl.serials].sort(),
    number: crl.number,
    keyMode: (statSync(home.paths.master.key).mode & 0o777).toString(8),
  }).toEqual({
    first: [legacy],
    second: [first.serial],
    onDisk: second.serial,
    listed: [legacy, first.serial].sort(),
    number: 2,
    keyMode: "600",
  });
});
