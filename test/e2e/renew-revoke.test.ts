/**
 * Certificates over their life on real daemons, seen from outside with
 * openssl and curl: `swarm renew` (new serials served by both daemons, the
 * agent keeps its pid, the old certificates gone from disk), kill -9
 * mid-renew, revocation (rotate-master, operator revoke, `swarm crl push`,
 * an older CRL refused, bad input), `swarm update` renewing what is due and
 * delivering the CRL, and a decommissioned host that is never called.
 */
import { beforeAll, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { X509Certificate } from "node:crypto";
import { cpSync, existsSync, readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { release, until, type CliResult, type Worker } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";

const fleet = useFleet({ workers: 3, start: "all" });
const home = () => fleet.env.DECNET_HOME!;
const master = () => join(home(), "ca", "master");
const PORTS = { agent: 8765, updater: 8766 } as const;

beforeAll(async () => {
  const r = await fleet.update(["--all", "--artifact", (await release("v1")).file]);
  expect(r.report?.hosts.map((h) => h.agent)).toEqual(["updated", "updated", "updated"]);
}, 180_000);

/** One line on stderr, no stack frames. */
const oneLine = (r: CliResult) => r.stderr.trim().split("\n").length === 1 && !/\n\s+at |\.ts:\d+/.test(r.stderr);

/** The serial of the certificate a daemon serves, as `openssl s_client` sees it (with the master identity). */
async function served(w: Worker, role: keyof typeof PORTS): Promise<string> {
  const m = master();
  const p = Bun.spawn(["openssl", "s_client", "-connect", `${w.address}:${PORTS[role]}`, "-cert", join(m, "worker.crt"), "-key", join(m, "worker.key")], { stdin: "ignore", stdout: "pipe", stderr: "ignore" });
  const text = await new Response(p.stdout).text();
  await p.exited;
  const pem = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/.exec(text)?.[0];
  return pem ? new X509Certificate(pem).serialNumber.toLowerCase() : "no certificate";
}

/** GET /health with curl as the identity in `dir`: the HTTP status, or "no answer" when the handshake refuses it. */
async function curlAs(dir: string, w: Worker, role: keyof typeof PORTS): Promise<string> {
  const r = await Bun.$`curl -sS -k --max-time 5 -o /dev/null -w %{http_code} --cert ${join(dir, "worker.crt")} --key ${join(dir, "worker.key")} https://${w.address}:${PORTS[role]}/health`.nothrow().quiet();
  return r.exitCode === 0 ? r.stdout.toString() : "no answer";
}

/** POST a JSON body with curl as the master: "<status> <error code>". */
async function postAsMaster(w: Worker, path: string, body: string): Promise<string> {
  const m = master();
  const r = await Bun.$`curl -sS -k --max-time 10 --cert ${join(m, "worker.crt")} --key ${join(m, "worker.key")} -H content-type:application/json --data-binary ${body} -w ${"\n%{http_code}"} https://${w.address}:8766${path}`.nothrow().quiet();
  const [json, status] = r.stdout.toString().split(/\n(?=\d+$)/);
  const b = JSON.parse(json!) as { error?: { code: string; message: string } };
  return `${status} ${b.error ? `${b.error.code}: ${b.error.message}` : "ok"}`;
}

const certSerial = (file: string) => new X509Certificate(readFileSync(file)).serialNumber.toLowerCase();
const bundleFiles = (w: Worker) => [join(w.agentBundle, "worker.crt"), join(w.agentBundle, "worker.key"), join(w.updaterBundle, "updater.crt"), join(w.updaterBundle, "updater.key")];

/** Every file under the worker's bundle dirs and install dir. */
function workerFiles(w: Worker): string[] {
  const walk = (d: string): string[] => (existsSync(d) ? readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : e.isFile() ? [join(d, e.name)] : [])) : []);
  return [w.agentBundle, w.updaterBundle, w.installDir].flatMap(walk);
}

test("swarm renew: both daemons serve new certificates (openssl), the agent keeps its pid, the old certificates and keys are gone from disk", async () => {
  const w = fleet.worker("w1");
  const before = { agent: await served(w, "agent"), updater: await served(w, "updater"), pid: fleet.pid(w, "agent") };
  const onDiskBefore = { agent: certSerial(join(w.agentBundle, "worker.crt")), updater: certSerial(join(w.updaterBundle, "updater.crt")) };
  // The old certificates whole (certificates of one CA share lines), the old keys by any line.
  const oldTexts = bundleFiles(w).flatMap((f) => {
    const pem = readFileSync(f, "utf8");
    const body = pem.split("\n").filter((l) => l && !l.startsWith("-----"));
    return f.endsWith(".key") ? body.filter((l) => l.length > 20) : [body.join("\n")];
  });
  const r = await fleet.cli(["swarm", "renew", "--host", "w1", "--json"]);
  const row = JSON.parse(r.stdout)[0];
  const after = { agent: await served(w, "agent"), updater: await served(w, "updater"), pid: fleet.pid(w, "agent") };
  using db = new Database(join(home(), "swarm.db"), { readonly: true });
  const superseded = db.query<{ serial: string; revoke_reason: string }, []>("SELECT serial, revoke_reason FROM certs WHERE name = 'w1' AND revoked_at IS NOT NULL ORDER BY serial").all();
  expect({
    code: r.code,
    row: { outcome: row.outcome, agent: row.agent, superseded: [...row.superseded].sort() },
    before: { served: before.agent === onDiskBefore.agent && before.updater === onDiskBefore.updater, changed: after.agent !== before.agent && after.updater !== before.updater },
    after,
    onDisk: { agent: certSerial(join(w.agentBundle, "worker.crt")), updater: certSerial(join(w.updaterBundle, "updater.crt")) },
    oldOnDisk: workerFiles(w).filter((f) => oldTexts.some((t) => readFileSync(f, "latin1").includes(t))),
    leftovers: workerFiles(w).filter((f) => f.endsWith(".next") || f.includes("/renew/")),
    superseded: superseded.map((c) => c.revoke_reason),
    events: db.query<{ action: string }, []>("SELECT action FROM identity_events WHERE subject = 'w1' ORDER BY id").all().map((e) => e.action),
  }).toEqual({
    code: 0,
    row: { outcome: "renewed", agent: "switched", superseded: [before.agent, before.updater].sort() },
    before: { served: true, changed: true },
    after: { agent: row.serials.agent, updater: row.serials.updater, pid: before.pid },
    onDisk: { agent: row.serials.agent, updater: row.serials.updater },
    oldOnDisk: [],
    leftovers: [],
    superseded: ["superseded", "superseded"],
    events: ["enroll", "renew"],
  });
  // Renewed again at once: it can be repeated.
  expect((await fleet.cli(["swarm", "renew", "--host", "w1"])).code).toBe(0);
});

test("kill -9 of the updater mid-renew (new keys made, nothing installed): it starts again on its old certificates, and the renewal completes", async () => {
  const w = fleet.worker("w1");
  const agentPid = fleet.pid(w, "agent");
  const before = { agent: await served(w, "agent"), updater: await served(w, "updater") };
  expect(await postAsMaster(w, "/renew/csr", "")).toBe("200 ok");
  process.kill(fleet.pid(w, "updater"), "SIGKILL");
  await fleet.startUpdater(w);
  const restarted = { agent: await served(w, "agent"), updater: await served(w, "updater"), pending: existsSync(join(w.updaterBundle, "renew")) };
  const r = await fleet.cli(["swarm", "renew", "--host", "w1", "--json"]);
  const row = JSON.parse(r.stdout)[0];
  expect({ restarted, code: r.code, now: { agent: await served(w, "agent"), updater: await served(w, "updater") }, agentPid: fleet.pid(w, "agent") }).toEqual({
    restarted: { ...before, pending: true },
    code: 0,
    now: row.serials,
    agentPid,
  });
});

test("revocation: after rotate-master and crl push the old master gets no answer from either daemon while the new one does; an operator works until revoked and pushed", async () => {
  const ws = fleet.workers;
  const oldMaster = join(fleet.root, "old-master");
  cpSync(master(), oldMaster, { recursive: true });
  const rotate = await fleet.cli(["swarm", "rotate-master"]);
  const notYet = await curlAs(oldMaster, ws[0]!, "updater");
  const push = await fleet.cli(["swarm", "crl", "push", "--all", "--json"]);
  const calls = async (dir: string) => Object.fromEntries(await Promise.all(ws.flatMap((w) => (["agent", "updater"] as const).map(async (role) => [`${w.name} ${role}`, await curlAs(dir, w, role)]))));
  const all = (v: string) => Object.fromEntries(ws.flatMap((w) => [`${w.name} agent`, `${w.name} updater`].map((k) => [k, v])));
  const afterRotate = { old: await calls(oldMaster), new: await calls(master()) };
  const ci = join(fleet.root, "ci");
  expect((await fleet.cli(["swarm", "operator", "add", "ci", "--out", ci])).code).toBe(0);
  const ciBefore = await calls(ci);
  expect((await fleet.cli(["swarm", "operator", "revoke", "ci"])).code).toBe(0);
  const ciRevokedNotPushed = await calls(ci);
  const push2 = await fleet.cli(["swarm", "crl", "push", "--host", ws.map((w) => w.name).join(",")]);
  const unknown = await fleet.cli(["swarm", "operator", "revoke", "nobody"]);
  expect({
    rotate: rotate.code,
    notYet,
    push: [push.code, JSON.parse(push.stdout).rows.map((r: { outcome: string }) => r.outcome)],
    afterRotate,
    ciBefore,
    ciRevokedNotPushed,
    push2: push2.code,
    ciAfter: await calls(ci),
    newAfter: await calls(master()),
    agentsKeptPids: ws.every((w) => existsSync(w.paths.agentPid)),
    unknown: [unknown.code, unknown.stderr],
  }).toEqual({
    rotate: 0,
    notYet: "200",
    push: [0, ["updated", "updated", "updated"]],
    afterRotate: { old: all("no answer"), new: all("200") },
    ciBefore: all("200"),
    ciRevokedNotPushed: all("200"),
    push2: 0,
    ciAfter: all("no answer"),
    newAfter: all("200"),
    agentsKeptPids: true,
    unknown: [2, "decnet: no operator named nobody — operators are added with `decnet swarm operator add NAME --out DIR`\n"],
  });
});

test("a daemon refuses an older CRL, the same one again, and a malformed CRL or certificate, each with a clear 4xx", async () => {
  const w = fleet.worker("w2");
  const held = JSON.parse((await fleet.cli(["swarm", "crl", "push", "--host", "w2", "--json"])).stdout);
  // An older CRL, signed by this CA (one the master wrote before): kept by the test from the home's history of pushes.
  const { loadOrCreateCa } = await import("../../src/core/ca.ts");
  const { publishCrl } = await import("../../src/core/crl.ts");
  const { IdentityStore } = await import("../../src/core/registry-identity.ts");
  const { homePaths } = await import("../../src/lib/paths.ts");
  const paths = homePaths(home());
  const scratch = join(fleet.root, "scratch-crl.pem");
  const older = await (async () => {
    using store = new IdentityStore(join(fleet.root, "scratch.db"));
    return await publishCrl(await loadOrCreateCa(paths), store, { file: scratch });
  })();
  const current = readFileSync(paths.crl, "utf8");
  const again = await fleet.cli(["swarm", "crl", "push", "--host", "w2"]);
  expect({
    held: held.rows[0].number,
    older: await postAsMaster(w, "/crl", JSON.stringify({ crl: older.pem })),
    same: await postAsMaster(w, "/crl", JSON.stringify({ crl: current })),
    again: [again.code, again.stdout.includes(`holds CRL #${held.number} already`)],
    garbage: await postAsMaster(w, "/crl", JSON.stringify({ crl: "-----BEGIN X509 CRL-----\nbm90IGEgQ1JM\n-----END X509 CRL-----\n" })),
    notJson: await postAsMaster(w, "/crl", "{"),
    certNoRenewal: await postAsMaster(w, "/renew/install", JSON.stringify({ certs: { agent: "x", updater: "y" } })),
    csr: await postAsMaster(w, "/renew/csr", ""),
    badCert: await postAsMaster(w, "/renew/install", JSON.stringify({ certs: { agent: "not a certificate", updater: "not one either" } })),
    stillServes: await curlAs(master(), w, "agent"),
  }).toEqual({
    held: held.number,
    older: `409 stale_crl: CRL #1 is not newer than CRL #${held.number} held here`,
    same: `409 stale_crl: CRL #${held.number} is not newer than CRL #${held.number} held here`,
    again: [0, true],
    garbage: "400 bad_certificate: CRL is not a DER certificate revocation list",
    notJson: "400 bad_request: request body is not JSON",
    certNoRenewal: "400 bad_request: no renewal is in progress here",
    csr: "200 ok",
    badCert: "400 bad_certificate: certificate for w2 is not PEM",
    stillServes: "200",
  });
});

test("swarm update renews the certificates due within 30 days on the hosts it reaches, says so, and delivers the CRL", async () => {
  const [w2, w3] = [fleet.worker("w2"), fleet.worker("w3")];
  const before = { w2: await served(w2, "agent"), w3: await served(w3, "agent"), pid: fleet.pid(w2, "agent") };
  {
    // The registry as it stands 65 days on: w2's certificates have 25 days left.
    using db = new Database(join(home(), "swarm.db"));
    db.run(`UPDATE certs SET not_after = '${new Date(Date.now() + 25 * 86_400_000).toISOString()}' WHERE name = 'w2' AND revoked_at IS NULL`);
  }
  // Something new to deliver: a revocation.
  expect((await fleet.cli(["swarm", "operator", "add", "ci2", "--out", join(fleet.root, "ci2")])).code).toBe(0);
  expect((await fleet.cli(["swarm", "operator", "revoke", "ci2"])).code).toBe(0);
  const r = await fleet.update(["--host", "w2,w3", "--artifact", (await release("v1")).file]);
  const [row2, row3] = [r.row("w2"), r.row("w3")];
  expect({
    code: r.code,
    w2: { renewed: row2.identity?.renewed?.serials.agent === (await served(w2, "agent")), agent: row2.identity?.renewed?.agent, says: row2.detail.includes("certificates renewed (due within 30 days)"), crl: row2.identity?.crl?.changed, pid: fleet.pid(w2, "agent") },
    w3: { renewed: row3.identity?.renewed, same: (await served(w3, "agent")) === before.w3, crl: row3.identity?.crl?.changed, error: row3.identity?.error },
  }).toEqual({
    code: 0,
    w2: { renewed: true, agent: "switched", says: true, crl: true, pid: before.pid },
    w3: { renewed: null, same: true, crl: true, error: null },
  });
});

test("a decommissioned host is never called: no command reaches its address, each names it in one line", async () => {
  const w = fleet.worker("w3");
  for (const role of ["agent", "updater"] as const) process.kill(fleet.pid(w, role), "SIGTERM");
  await until(() => !existsSync(w.paths.updater.sock) && !existsSync(w.paths.agentSock), "w3's daemons to stop");
  expect((await fleet.cli(["swarm", "decommission", "--host", "w3"])).code).toBe(0);
  // Whatever connects to w3's ports from here on is counted.
  let connections = 0;
  const listeners = await Promise.all(Object.values(PORTS).map((port) => new Promise<ReturnType<typeof createServer>>((resolve) => {
    const s = createServer((c) => { connections++; c.destroy(); });
    s.listen(port, w.address, () => resolve(s));
  })));
  try {
    const v1 = (await release("v1")).file;
    const named = await Promise.all([
      fleet.cli(["swarm", "update", "--host", "w3", "--artifact", v1]),
      fleet.cli(["swarm", "releases", "--host", "w3"]),
      fleet.cli(["swarm", "rollback", "--host", "w3"]),
      fleet.cli(["swarm", "renew", "--host", "w3"]),
      fleet.cli(["swarm", "crl", "push", "--host", "w3"]),
    ]);
    const all = await Promise.all([
      fleet.update(["--all", "--artifact", v1]),
      fleet.cli(["swarm", "renew", "--all", "--json"]),
      fleet.cli(["swarm", "crl", "push", "--all", "--json"]),
    ]);
    expect({
      named: named.map((r) => [r.code, oneLine(r), r.stderr.includes("host w3 was decommissioned at")]),
      all: [all[0].report?.hosts.map((h) => h.host), JSON.parse(all[1].stdout).map((x: { host: string }) => x.host), JSON.parse(all[2].stdout).rows.map((x: { host: string }) => x.host)],
      connections,
    }).toEqual({
      named: named.map(() => [1, true, true]),
      all: [["w1", "w2"], ["w1", "w2"], ["w1", "w2"]],
      connections: 0,
    });
  } finally {
    for (const s of listeners) s.close();
  }
});
