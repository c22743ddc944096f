/**
 * The daemons' swappable listener over real TLS in one process: it serves
 * its bundle dir as it is on disk at each swap (new certificate, new CRL),
 * lets a request on the old listener finish, never loads a CRL Bun would
 * lock every client out with (ahead of the clock, lapsing, unreadable), and
 * drops a CRL by itself just before it lapses. Plus the CRL and certificate
 * dates read from DER without a library.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createServer } from "node:net";
import { join } from "node:path";
import tls from "node:tls";
import { issue, loadOrCreateCa, writeBundle } from "../../src/core/ca.ts";
import { publishCrl, revoke } from "../../src/core/crl.ts";
import { IdentityStore } from "../../src/core/registry-identity.ts";
import { TlsListener } from "../../src/daemons/tls-listener.ts";
import { certSerial, certValidity } from "../../src/lib/cert-expiry.ts";
import { CRL_DROP_MARGIN_MS, crlDates, servingCrl } from "../../src/lib/crl-dates.ts";
import { readCrl } from "../../src/lib/crl.ts";
import { bundlePaths, homePaths } from "../../src/lib/paths.ts";

const DAY = 86_400_000;

/** A port nothing listens on (the listener binds fixed ports, as daemons do). */
async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function setup() {
  const dir = mkdtempSync(join(tmpdir(), "decnet-listener-"));
  const paths = homePaths(join(dir, "master"));
  const ca = await loadOrCreateCa(paths);
  const store = new IdentityStore(paths.db);
  const bundle = bundlePaths(join(dir, "agent"), "worker");
  const first = await writeBundle(ca, bundle, { role: "agent", cn: "edge-1", sans: ["127.0.0.1"] });
  const master = await issue(ca, { role: "master", cn: "decnet-master" });
  const operator = await issue(ca, { role: "operator", cn: "operator@ci" });
  await store.recordIssued(operator, "ci");
  return {
    dir, paths, ca, store, bundle, first, master, operator,
    [Symbol.dispose]() {
      store[Symbol.dispose]();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The serial the server presents to `client`, or "no answer" when it refuses the client. */
function served(port: number, ca: string, client: { certPem: string; keyPem: string }): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: "127.0.0.1", port, ca, cert: client.certPem, key: client.keyPem, checkServerIdentity: () => undefined }, () => {
      s.write("GET /x HTTP/1.1\r\nhost: x\r\n\r\n");
      s.once("data", () => { resolve(s.getPeerCertificate().serialNumber.toLowerCase()); s.end(); });
    });
    s.on("error", () => resolve("no answer"));
    s.on("close", () => resolve("no answer"));
  });
}

const quiet = () => {
  const warnings: string[] = [];
  return { warnings, log: { warn: (m: string) => void warnings.push(m), info() {} } as never };
};

test("certificate and CRL dates and serials read from DER match the X.509 library's", async () => {
  using s = await setup();
  const crl = await revoke(s.ca, s.store, [s.operator.serial], "operator-revoked", { file: s.paths.crl });
  const lib = await readCrl(crl.pem, s.ca.pem);
  expect({ crl: crlDates(crl.pem), serial: certSerial(s.first.certPem), validity: certValidity(s.first.certPem).notAfter.toISOString() }).toEqual({
    crl: { thisUpdate: lib.thisUpdate, nextUpdate: lib.nextUpdate },
    serial: s.first.serial,
    validity: s.first.notAfter,
  });
});

test("a CRL is served only while valid now: not ahead of the clock, not lapsing, not unreadable", async () => {
  using s = await setup();
  const now = new Date();
  const file = (name: string, pem: string) => {
    const f = join(s.dir, name);
    writeFileSync(f, pem);
    return f;
  };
  const good = await publishCrl(s.ca, s.store, { file: join(s.dir, "good.pem"), now });
  const ahead = await publishCrl(s.ca, s.store, { file: join(s.dir, "ahead.pem"), now: new Date(now.getTime() + 3 * DAY) });
  // The DER keeps whole seconds.
  const at = (crl: { pem: string }, ms: number) => new Date(crlDates(crl.pem).nextUpdate!.getTime() - ms);
  const decide = (f: string, when = now) => {
    const r = servingCrl(f, when);
    return r.pem === null ? `skip: ${r.why === null ? "none" : r.why.replace(s.dir, "DIR")}` : `serve until ${r.until?.toISOString()}`;
  };
  expect({
    missing: decide(join(s.dir, "none.pem")),
    good: decide(join(s.dir, "good.pem")),
    ahead: decide(join(s.dir, "ahead.pem")),
    lapsing: decide(join(s.dir, "good.pem"), at(good, CRL_DROP_MARGIN_MS - 1)),
    lapsed: decide(join(s.dir, "good.pem"), at(good, -1)),
    garbage: decide(file("garbage.pem", "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n")),
  }).toEqual({
    missing: "skip: none",
    good: `serve until ${at(good, CRL_DROP_MARGIN_MS).toISOString()}`,
    ahead: `skip: DIR/ahead.pem is not valid before ${new Date(Date.parse(ahead.nextUpdate) - 93 * DAY + 2 * DAY).toISOString().replace(/\.\d+Z$/, ".000Z")}`,
    lapsing: `skip: DIR/good.pem lapsed at ${good.nextUpdate.replace(/\.\d+Z$/, ".000Z")}; the master pushes a fresh one with every \`swarm update\``,
    lapsed: `skip: DIR/good.pem lapsed at ${good.nextUpdate.replace(/\.\d+Z$/, ".000Z")}; the master pushes a fresh one with every \`swarm update\``,
    garbage: "skip: DIR/garbage.pem cannot be read as a CRL (DER is truncated)",
  });
});

test("swap: the listener serves the bundle dir as it is now — a new certificate, then a CRL — and a request on the old listener finishes", async () => {
  using s = await setup();
  const port = await freePort();
  let release!: () => void;
  let entered!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const inHandler = new Promise<void>((r) => (entered = r));
  let slow = true;
  const { log, warnings } = quiet();
  const l = new TlsListener({
    app: async () => {
      if (slow) { slow = false; entered(); await held; return new Response("old"); }
      return new Response("ok");
    },
    hostname: "127.0.0.1", port, bundle: s.bundle, hint: "", log,
  });
  const started = l.start();
  const inFlight = fetch(`https://127.0.0.1:${port}/`, { tls: { cert: s.master.certPem, key: s.master.keyPem, ca: s.ca.pem, checkServerIdentity: () => undefined } } as RequestInit).then((r) => r.text());
  await inHandler;
  const second = await writeBundle(s.ca, s.bundle, { role: "agent", cn: "edge-1", sans: ["127.0.0.1"] });
  const swapped = await l.swap();
  release();
  const afterCert = { master: await served(port, s.ca.pem, s.master), operator: await served(port, s.ca.pem, s.operator) };
  const crl = await revoke(s.ca, s.store, [s.operator.serial], "operator-revoked", { file: s.bundle.crl });
  const withCrl = await l.swap();
  const afterCrl = { master: await served(port, s.ca.pem, s.master), operator: await served(port, s.ca.pem, s.operator) };
  l.stop();
  expect({ started, inFlight: await inFlight, swapped, afterCert, withCrl, afterCrl, warnings }).toEqual({
    started: { serial: s.first.serial, crl_until: null },
    inFlight: "old",
    swapped: { serial: second.serial, crl_until: null },
    afterCert: { master: second.serial, operator: second.serial },
    withCrl: { serial: second.serial, crl_until: new Date(Date.parse(crl.nextUpdate) - CRL_DROP_MARGIN_MS).toISOString().replace(/\.\d+Z$/, ".000Z") },
    afterCrl: { master: second.serial, operator: "no answer" },
    warnings: [],
  });
});

test("a CRL about to lapse is dropped by the listener itself, with a warning, before Bun would refuse every client", async () => {
  using s = await setup();
  const port = await freePort();
  const crl = await revoke(s.ca, s.store, [s.operator.serial], "operator-revoked", { file: s.bundle.crl });
  // A clock 300 ms short of the moment the CRL must go.
  const offset = crlDates(crl.pem).nextUpdate!.getTime() - CRL_DROP_MARGIN_MS - 300 - Date.now();
  const { log, warnings } = quiet();
  const l = new TlsListener({ app: async () => new Response("ok"), hostname: "127.0.0.1", port, bundle: s.bundle, hint: "", log, now: () => new Date(Date.now() + offset) });
  const started = l.start();
  const before = await served(port, s.ca.pem, s.operator);
  const deadline = Date.now() + 5_000;
  while (l.served?.crl_until !== null && Date.now() < deadline) await Bun.sleep(20);
  const after = { served: l.served, master: await served(port, s.ca.pem, s.master) };
  l.stop();
  expect({ enforced: started.crl_until !== null, before, after, warned: warnings.map((w) => w.replace(/ at .*$/, "")) }).toEqual({
    enforced: true,
    before: "no answer",
    after: { served: { serial: s.first.serial, crl_until: null }, master: s.first.serial },
    warned: [`serving without a CRL: ${s.bundle.crl} lapsed`],
  });
});
