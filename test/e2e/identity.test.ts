/**
 * Identity commands of the compiled binary: `swarm enroll --updater-only`
 * (its bundle runs a real updater), `swarm operator add|revoke`, `swarm
 * rotate-master` and the revocations of `swarm decommission` — each checked
 * by curl against a TLS server given the CRL the binary wrote.
 */
import { expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { useFleet } from "../fleet/use-fleet.ts";

const fleet = useFleet({ workers: 1, enroll: false });

const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
const home = () => fleet.env.DECNET_HOME!;
const crlFile = () => join(home(), "ca", "crl.pem");

function cert(file: string) {
  const c = new X509Certificate(readFileSync(file));
  return { subject: c.subject, eku: c.keyUsage, san: c.subjectAltName ?? null, serial: c.serialNumber.toLowerCase() };
}

/** Serials a CRL lists, read by openssl (an outside parser). */
async function crlSerials(): Promise<{ number: number; serials: string[] }> {
  const text = (await Bun.$`openssl crl -in ${crlFile()} -noout -text`.quiet()).stdout.toString();
  return {
    number: Number(/CRL Number:\s*\n\s*(\d+)/.exec(text)?.[1]),
    serials: [...text.matchAll(/Serial Number: ([0-9A-F]+)/g)].map((m) => m[1]!.toLowerCase()).sort(),
  };
}

/**
 * A mutual-TLS server with an agent bundle, enforcing the master's current
 * CRL as a daemon would; curl calls it with each caller's identity folder.
 */
async function curlThroughCrl(agentDir: string, callers: Record<string, string>): Promise<Record<string, string>> {
  await using srv = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    tls: {
      cert: readFileSync(join(agentDir, "worker.crt"), "utf8"),
      key: readFileSync(join(agentDir, "worker.key"), "utf8"),
      ca: readFileSync(join(home(), "ca", "ca.crt"), "utf8"),
      requestCert: true,
      rejectUnauthorized: true,
      // No revocation yet: no CRL, as a daemon that was never sent one.
      ...(existsSync(crlFile()) ? { crl: readFileSync(crlFile(), "utf8") } : {}),
    },
    fetch: () => new Response("ok"),
  });
  const out: Record<string, string> = {};
  for (const [name, dir] of Object.entries(callers)) {
    const r = await Bun.$`curl -sS -k --max-time 5 --cert ${join(dir, "worker.crt")} --key ${join(dir, "worker.key")} https://127.0.0.1:${srv.port}/`.nothrow().quiet();
    out[name] = r.exitCode === 0 ? r.stdout.toString() : "no answer";
  }
  return out;
}

test("enroll --updater-only issues the missing updater bundle with the registry's SANs, leaves the agent bundle alone, and runs a real updater", async () => {
  const w = fleet.worker("w1");
  const e = await fleet.cli(["swarm", "enroll", "--host", w.name, "--address", w.address, "--sans", "w1.example.net", "--out-dir", w.agentBundle]);
  const agentBefore = { crt: readFileSync(join(w.agentBundle, "worker.crt"), "utf8"), key: readFileSync(join(w.agentBundle, "worker.key"), "utf8"), mtime: statSync(join(w.agentBundle, "worker.crt")).mtimeMs };
  const u = await fleet.cli(["swarm", "enroll", "--host", w.name, "--updater-only", "--out-dir", w.agentBundle]);
  const again = await fleet.cli(["swarm", "enroll", "--host", w.name, "--updater-only", "--out-dir", w.agentBundle]);
  const withAddress = await fleet.cli(["swarm", "enroll", "--host", w.name, "--updater-only", "--address", "10.0.0.1"]);
  const unknown = await fleet.cli(["swarm", "enroll", "--host", "ghost", "--updater-only"]);
  const list = JSON.parse((await fleet.cli(["swarm", "list", "--json"])).stdout) as Array<{ name: string; has_updater: boolean }>;
  expect({
    codes: [e.code, u.code, again.code, withAddress.code, unknown.code],
    stdout: u.stdout,
    errors: [again.stderr, withAddress.stderr, unknown.stderr],
    updater: cert(join(w.updaterBundle, "updater.crt")),
    keyMode: (statSync(join(w.updaterBundle, "updater.key")).mode & 0o777).toString(8),
    agentUntouched: { crt: readFileSync(join(w.agentBundle, "worker.crt"), "utf8"), key: readFileSync(join(w.agentBundle, "worker.key"), "utf8"), mtime: statSync(join(w.agentBundle, "worker.crt")).mtimeMs },
    hasUpdater: list.find((h) => h.name === w.name)?.has_updater,
  }).toEqual({
    codes: [0, 0, 1, 2, 2],
    stdout: `issued the updater bundle for w1 (${w.address}, w1.example.net)\n  updater bundle: ${w.updaterBundle}\n`,
    errors: [
      "decnet: host w1 already has an updater bundle — to replace its certificates, renew them (`decnet swarm renew`)\n",
      "decnet: --updater-only takes the address and SANs the registry holds — drop --address, --sans and --updater\n",
      "decnet: no host named ghost is enrolled — see `decnet swarm list`\n",
    ],
    updater: { subject: "CN=updater@w1", eku: [SERVER_AUTH], san: `IP Address:${w.address}, DNS:w1.example.net`, serial: expect.stringMatching(/^[0-9a-f]+$/) },
    keyMode: "600",
    agentUntouched: agentBefore,
    hasUpdater: true,
  });
  await fleet.startUpdater(w);
  const health = await fleet.health(w);
  expect({ role: health.role }).toEqual({ role: "updater" });
});

test("operator add issues a clientAuth identity that works until operator revoke puts it on the CRL", async () => {
  const w = fleet.worker("w1");
  const ci = join(fleet.root, "operators", "ci");
  const add = await fleet.cli(["swarm", "operator", "add", "ci", "--out", ci]);
  const dup = await fleet.cli(["swarm", "operator", "add", "ci", "--out", join(fleet.root, "operators", "ci2")]);
  const before = await curlThroughCrl(w.agentBundle, { ci });
  const serial = cert(join(ci, "worker.crt")).serial;
  const rev = await fleet.cli(["swarm", "operator", "revoke", "ci"]);
  const after = await curlThroughCrl(w.agentBundle, { ci, master: join(home(), "ca", "master") });
  const unknown = await fleet.cli(["swarm", "operator", "revoke", "nobody"]);
  const readd = await fleet.cli(["swarm", "operator", "add", "ci", "--out", join(fleet.root, "operators", "ci3")]);
  expect({
    codes: [add.code, dup.code, rev.code, unknown.code, readd.code],
    identity: cert(join(ci, "worker.crt")),
    keyMode: (statSync(join(ci, "worker.key")).mode & 0o777).toString(8),
    dup: dup.stderr.startsWith("decnet: operator ci already has a valid identity"),
    revoked: rev.stdout.startsWith(`revoked operator ci (${serial}) in CRL #`),
    before,
    after,
    listed: (await crlSerials()).serials.includes(serial),
    unknown: unknown.stderr,
  }).toEqual({
    codes: [0, 1, 0, 2, 0],
    identity: { subject: "CN=operator@ci", eku: [CLIENT_AUTH], san: null, serial },
    keyMode: "600",
    dup: true,
    revoked: true,
    before: { ci: "ok" },
    after: { ci: "no answer", master: "ok" },
    listed: true,
    unknown: "decnet: no operator named nobody — operators are added with `decnet swarm operator add NAME --out DIR`\n",
  });
});

test("rotate-master replaces the master identity and revokes the old one", async () => {
  const w = fleet.worker("w1");
  const master = join(home(), "ca", "master");
  const old = cert(join(master, "worker.crt")).serial;
  const oldCopy = join(fleet.root, "old-master");
  await Bun.$`cp -r ${master} ${oldCopy}`.quiet();
  const r = await fleet.cli(["swarm", "rotate-master"]);
  const now = cert(join(master, "worker.crt")).serial;
  const crl = await crlSerials();
  expect({
    code: r.code,
    changed: now !== old,
    says: r.stdout.includes(`revoked ${old} (CRL #${crl.number})`),
    oldListed: crl.serials.includes(old),
    newListed: crl.serials.includes(now),
    calls: await curlThroughCrl(w.agentBundle, { old: oldCopy, new: master }),
  }).toEqual({ code: 0, changed: true, says: true, oldListed: true, newListed: false, calls: { old: "no answer", new: "ok" } });
});

test("decommission revokes the host's certificates; the registry records who did each identity change", async () => {
  const w = fleet.worker("w1");
  const serials = [cert(join(w.agentBundle, "worker.crt")).serial, cert(join(w.updaterBundle, "updater.crt")).serial].sort();
  const d = await fleet.cli(["swarm", "decommission", "--host", w.name]);
  const crl = await crlSerials();
  using db = new Database(join(home(), "swarm.db"), { readonly: true });
  const events = db.query<{ action: string; subject: string; operator: string }, []>("SELECT action, subject, operator FROM identity_events ORDER BY id").all();
  expect({
    code: d.code,
    says: d.stdout.includes(`revoked 2 certificate(s) (CRL #${crl.number})`),
    listed: serials.every((s) => crl.serials.includes(s)),
    actions: events.map((e) => `${e.action} ${e.subject}`),
    who: [...new Set(events.map((e) => e.operator))].length,
  }).toEqual({
    code: 0,
    says: true,
    listed: true,
    actions: ["enroll w1", "enroll-updater w1", "operator-add ci", "operator-revoke ci", "operator-add ci", "rotate-master decnet-master", "decommission w1"],
    who: 1,
  });
});
