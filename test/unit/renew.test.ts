/**
 * Renewal and CRL delivery over real mTLS in one process: the worker's
 * identity routes behind a Bun.serve that re-creates its listener (reusePort)
 * when they report new certificates or a new CRL, and the master's renewHost
 * and deliverCrl; plus the crash-safe switch of a key/certificate pair.
 */
import { expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import type { Server } from "bun";
import { issue, loadOrCreateCa, writeBundle } from "../../src/core/ca.ts";
import { publishCrl, revoke } from "../../src/core/crl.ts";
import { IdentityStore } from "../../src/core/registry-identity.ts";
import { deliverCrl, dueForRenewal, renewHost } from "../../src/core/renew.ts";
import { identityRoutes } from "../../src/daemons/identity/routes.ts";
import { createApp } from "../../src/daemons/server.ts";
import { commitBundle, recoverBundle, stageBundle } from "../../src/lib/bundle-switch.ts";
import { createLogger } from "../../src/lib/log.ts";
import { bundlePaths, homePaths } from "../../src/lib/paths.ts";
import { readBundle, serverTls } from "../../src/lib/tls.ts";
import { makeKeyAndCsr } from "../../src/lib/worker-keys.ts";

const log = createLogger("test");
log.error = Object.assign(() => {}, { raw: () => {} });
const quiet = { info() {}, warn() {} } as never;
const HOST = "edge-1";
const SANS = ["127.0.0.1"];

async function setup() {
  const dir = mkdtempSync(join(tmpdir(), "decnet-renew-"));
  const paths = homePaths(join(dir, "master"));
  const ca = await loadOrCreateCa(paths);
  const store = new IdentityStore(paths.db);
  const agent = bundlePaths(join(dir, "agent"), "worker");
  const updater = bundlePaths(join(dir, "updater"), "updater");
  for (const [b, role, cn] of [[agent, "agent", HOST], [updater, "updater", `updater@${HOST}`]] as const) {
    await store.recordIssued(await writeBundle(ca, b, { role, cn, sans: SANS }), HOST);
  }
  const master = await issue(ca, { role: "master", cn: "decnet-master" });
  const operator = await issue(ca, { role: "operator", cn: "operator@ci" });
  await store.recordIssued(operator, "ci");
  // The updater as a daemon would run it: re-created in process on new certificates or CRL.
  const serve = (port: number) => {
    const b = readBundle(updater, "");
    let crl: string | undefined;
    try { crl = readFileSync(updater.crl, "utf8"); } catch {}
    return Bun.serve({ hostname: "127.0.0.1", port, reusePort: true, tls: { ...serverTls(b), ...(crl ? { crl } : {}) }, fetch: (req) => app(req) });
  };
  let srv: Server<undefined>;
  const swap = () => {
    const old = srv;
    srv = serve(old.port!);
    old.stop(false);
  };
  const app = createApp(identityRoutes({ agentDir: agent.dir, updaterDir: updater.dir, now: () => new Date(), onRenewed: swap, onCrl: swap, log: quiet }), log);
  srv = serve(0);
  const endpoint = { host: HOST, address: "127.0.0.1", port: srv.port!, role: "updater" as const };
  const opts = { ca, store, sans: SANS, bundle: { cert: master.certPem, key: master.keyPem, ca: ca.pem }, crlFile: paths.crl };
  return {
    dir, paths, ca, store, agent, updater, endpoint, opts, operator, master,
    [Symbol.dispose]() {
      srv.stop(true);
      store[Symbol.dispose]();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The serial the server presents to `client`, or "no answer". */
function served(port: number, ca: string, client: { certPem: string; keyPem: string }): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: "127.0.0.1", port, ca, cert: client.certPem, key: client.keyPem, checkServerIdentity: () => undefined }, () => {
      // TLS 1.3: a refused client certificate shows as the connection closing right after.
      s.write("GET /x HTTP/1.1\r\nhost: x\r\n\r\n");
      s.once("data", () => { resolve(s.getPeerCertificate().serialNumber.toLowerCase()); s.end(); });
    });
    s.on("error", () => resolve("no answer"));
    s.on("close", () => resolve("no answer"));
  });
}

const serialOf = (file: string) => new X509Certificate(readFileSync(file)).serialNumber.toLowerCase();
const failure = (p: Promise<unknown>) => p.then(() => "succeeded", (e: { code?: string; message: string }) => `${e.code}: ${e.message}`);

test("renew: new keys made on the worker, both bundles switched, the listener serves the new certificate, the old ones revoked", async () => {
  using s = await setup();
  const before = { agent: serialOf(s.agent.crt), updater: serialOf(s.updater.crt), agentKey: readFileSync(s.agent.key, "utf8") };
  const servedBefore = await served(s.endpoint.port, s.ca.pem, s.master);
  const r = await renewHost(s.endpoint, s.opts);
  expect({
    servedBefore: servedBefore === before.updater,
    servedAfter: await served(s.endpoint.port, s.ca.pem, s.master),
    onDisk: { agent: serialOf(s.agent.crt), updater: serialOf(s.updater.crt) },
    newKey: readFileSync(s.agent.key, "utf8") !== before.agentKey,
    leftovers: [...readdirSync(s.agent.dir), ...readdirSync(s.updater.dir)].filter((f) => f.endsWith(".next") || f === "renew"),
    superseded: [...r.superseded].sort(),
    due: [await dueForRenewal(s.store, HOST), await dueForRenewal(s.store, HOST, new Date(Date.now() + 61 * 86_400_000))],
    events: (await s.store.events(HOST)).map((e) => e.action),
  }).toEqual({
    servedBefore: true,
    servedAfter: r.serials.updater,
    onDisk: r.serials,
    newKey: true,
    leftovers: [],
    superseded: [before.agent, before.updater].sort(),
    due: [false, true],
    events: ["renew"],
  });
});

test("renew refuses certificates for other keys, and an install with no renewal in progress; a retried /renew/csr keeps its keys", async () => {
  using s = await setup();
  const { renewCsr, renewInstall } = await import("../../src/client/identity.ts");
  const call = { timeoutMs: 10_000, bundle: s.opts.bundle };
  const noneYet = await failure(renewInstall(s.endpoint, { agent: s.ca.pem, updater: s.ca.pem }, call));
  const first = await renewCsr(s.endpoint, call);
  const again = await renewCsr(s.endpoint, call);
  const { signCsr } = await import("../../src/core/csr-sign.ts");
  const other = await makeKeyAndCsr(HOST);
  const wrong = await signCsr(s.ca, other.csrPem, { role: "agent", host: HOST, sans: SANS });
  const right = await signCsr(s.ca, first.csr.updater, { role: "updater", host: HOST, sans: SANS });
  const before = serialOf(s.agent.crt);
  expect({
    noneYet,
    sameKeys: first.csr.agent === again.csr.agent && first.csr.updater === again.csr.updater,
    otherKey: await failure(renewInstall(s.endpoint, { agent: wrong.certPem, updater: right.certPem }, call)),
    unchanged: serialOf(s.agent.crt) === before,
  }).toEqual({
    noneYet: "bad_request: no renewal is in progress here",
    sameKeys: true,
    otherKey: "bad_certificate: certificate for edge-1 is for another key than the one made here",
    unchanged: true,
  });
});

test("CRL delivery: a newer CRL is enforced at once, the same or an older one is refused, another CA's is refused", async () => {
  using s = await setup();
  const ci = { certPem: s.operator.certPem, keyPem: s.operator.keyPem };
  const servedBefore = await served(s.endpoint.port, s.ca.pem, ci);
  const first = await deliverCrl(s.endpoint, s.opts);
  const older = (await publishCrl(s.ca, s.store, { file: join(s.dir, "older.pem") })).pem; // a number the worker will pass
  await revoke(s.ca, s.store, [s.operator.serial], "operator-revoked", { file: s.paths.crl });
  const second = await deliverCrl(s.endpoint, s.opts);
  const { pushCrl } = await import("../../src/client/identity.ts");
  const call = { timeoutMs: 10_000, bundle: s.opts.bundle };
  const otherHome = homePaths(join(s.dir, "other"));
  const foreignCa = await loadOrCreateCa(otherHome);
  using otherStore = new IdentityStore(otherHome.db);
  const foreign = (await publishCrl(foreignCa, otherStore, { file: otherHome.crl })).pem;
  expect({
    servedBefore: servedBefore !== "no answer",
    first: { number: first.number, previous: first.previous },
    second: { number: second.number, previous: second.previous },
    same: await failure(pushCrl(s.endpoint, readFileSync(s.paths.crl, "utf8"), call)),
    older: await failure(pushCrl(s.endpoint, older, call)),
    foreign: await failure(pushCrl(s.endpoint, foreign, call)),
    garbage: await failure(pushCrl(s.endpoint, "nope", call)),
    agentDirHasIt: readFileSync(s.agent.crl, "utf8") === readFileSync(s.updater.crl, "utf8"),
    revokedOperator: await served(s.endpoint.port, s.ca.pem, ci),
    master: (await served(s.endpoint.port, s.ca.pem, s.master)) !== "no answer",
  }).toEqual({
    servedBefore: true,
    first: { number: 1, previous: null },
    second: { number: 3, previous: 1 },
    same: "stale_crl: CRL #3 is not newer than CRL #3 held here",
    older: "stale_crl: CRL #2 is not newer than CRL #3 held here",
    foreign: "bad_certificate: CRL is not signed by this CA (CN=decnet CA)",
    garbage: "bad_certificate: CRL is not PEM",
    agentDirHasIt: true,
    revokedOperator: "no answer",
    master: true,
  });
});

test("a key/certificate switch interrupted at any point recovers to the old pair or the new one", async () => {
  using s = await setup();
  const old = { crt: readFileSync(s.agent.crt, "utf8"), key: readFileSync(s.agent.key, "utf8") };
  const fresh = await issue(s.ca, { role: "agent", cn: HOST, sans: SANS });
  const next = { crt: fresh.certPem, key: fresh.keyPem };
  const pair = () => ({ crt: readFileSync(s.agent.crt, "utf8"), key: readFileSync(s.agent.key, "utf8") });
  const outcomes: Record<string, string> = {};
  // Killed after staging: nothing switched yet.
  stageBundle(s.agent, next);
  outcomes.staged = `${recoverBundle(s.agent)} ${JSON.stringify(pair()) === JSON.stringify(old) ? "old" : "mixed"}`;
  // Killed between the two renames: the key is new, the certificate follows.
  stageBundle(s.agent, next);
  renameSync(`${s.agent.key}.next`, s.agent.key);
  outcomes.halfway = `${recoverBundle(s.agent)} ${JSON.stringify(pair()) === JSON.stringify(next) ? "new" : "mixed"}`;
  // A whole commit, then a clean start.
  stageBundle(s.agent, old);
  commitBundle(s.agent);
  outcomes.committed = `${recoverBundle(s.agent)} ${JSON.stringify(pair()) === JSON.stringify(old) ? "old" : "mixed"}`;
  expect(outcomes).toEqual({ staged: "discarded old", halfway: "rolled-forward new", committed: "clean old" });
});
