/**
 * Enrollment as an outside tool sees it (node:crypto's X509 parser, not the
 * library that wrote the certificates), and the registry round trip.
 */
import { expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { useFleet } from "../fleet/use-fleet.ts";

const fleet = useFleet({ workers: 0 });

const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
const mode = (p: string) => (statSync(p).mode & 0o777).toString(8);

function describe(certFile: string, ca: X509Certificate) {
  const c = new X509Certificate(readFileSync(certFile));
  return {
    subject: c.subject,
    eku: c.keyUsage,
    san: c.subjectAltName ?? null,
    key: `${c.publicKey.asymmetricKeyType}/${c.publicKey.asymmetricKeyDetails?.namedCurve}`,
    chains: c.checkIssued(ca) && c.verify(ca.publicKey),
    ca: c.ca,
  };
}

test("enroll writes agent and updater bundles with the right CN, EKU, SANs, key type, chain and modes", async () => {
  const out = join(fleet.root, "b", "edge-1");
  const r = await fleet.cli(["swarm", "enroll", "--host", "edge-1", "--address", "127.0.9.1", "--sans", "edge-1.example.net,10.0.0.7", "--updater", "--out-dir", out]);
  expect(r.code).toBe(0);
  await fleet.cli(["swarm", "list"]);
  const home = fleet.env.DECNET_HOME!;
  const ca = new X509Certificate(readFileSync(join(home, "ca", "ca.crt")));
  const san = "IP Address:127.0.9.1, DNS:edge-1.example.net, IP Address:10.0.0.7";
  expect({
    ca: { self: ca.checkIssued(ca), isCa: ca.ca, key: ca.publicKey.asymmetricKeyDetails?.namedCurve },
    agent: describe(join(out, "worker.crt"), ca),
    updater: describe(join(`${out}-updater`, "updater.crt"), ca),
    master: describe(join(home, "ca", "master", "worker.crt"), ca),
    modes: {
      caDir: mode(join(home, "ca")),
      caKey: mode(join(home, "ca", "ca.key")),
      bundle: mode(out),
      agentKey: mode(join(out, "worker.key")),
      updaterBundle: mode(`${out}-updater`),
      updaterKey: mode(join(`${out}-updater`, "updater.key")),
      masterKey: mode(join(home, "ca", "master", "worker.key")),
    },
    sameCa: readFileSync(join(out, "ca.crt"), "utf8") === readFileSync(join(home, "ca", "ca.crt"), "utf8"),
  }).toEqual({
    ca: { self: true, isCa: true, key: "prime256v1" },
    agent: { subject: "CN=edge-1", eku: [SERVER_AUTH], san, key: "ec/prime256v1", chains: true, ca: false },
    updater: { subject: "CN=updater@edge-1", eku: [SERVER_AUTH], san, key: "ec/prime256v1", chains: true, ca: false },
    master: { subject: "CN=decnet-master", eku: [CLIENT_AUTH], san: null, key: "ec/prime256v1", chains: true, ca: false },
    modes: { caDir: "700", caKey: "600", bundle: "700", agentKey: "600", updaterBundle: "700", updaterKey: "600", masterKey: "600" },
    sameCa: true,
  });
});

test("registry: enroll, list, duplicate refused, decommission, --json", async () => {
  const e1 = await fleet.cli(["swarm", "enroll", "--host", "alpha", "--address", "127.0.9.2", "--updater", "--out-dir", join(fleet.root, "b", "alpha")]);
  const e2 = await fleet.cli(["swarm", "enroll", "--host", "beta", "--address", "127.0.9.3", "--out-dir", join(fleet.root, "b", "beta")]);
  const dup = await fleet.cli(["swarm", "enroll", "--host", "alpha", "--address", "127.0.9.9"]);
  const dec = await fleet.cli(["swarm", "decommission", "--host", "beta"]);
  const decUnknown = await fleet.cli(["swarm", "decommission", "--host", "nope"]);
  const list = await fleet.cli(["swarm", "list", "--json"]);
  const table = await fleet.cli(["swarm", "list"]);
  const hosts = (JSON.parse(list.stdout) as Array<Record<string, unknown>>).filter((h) => h.name === "alpha" || h.name === "beta");
  expect({
    codes: [e1.code, e2.code, dup.code, dec.code, decUnknown.code, list.code],
    dup: dup.stderr,
    decUnknown: decUnknown.stderr.trim(),
    hosts: hosts.map((h) => ({ name: h.name, address: h.address, has_updater: h.has_updater, decommissioned: h.decommissioned_at !== null })),
    tableRows: table.stdout.split("\n").filter((l) => /^(alpha|beta) /.test(l)).map((l) => l.split(/\s+/).at(-1)),
  }).toEqual({
    codes: [0, 0, 1, 0, 2, 0],
    dup: "decnet: host alpha is already enrolled — pick another --host name (see `decnet swarm list`)\n",
    decUnknown: "decnet: no host named nope is enrolled — see `decnet swarm list`",
    hosts: [
      { name: "alpha", address: "127.0.9.2", has_updater: true, decommissioned: false },
      { name: "beta", address: "127.0.9.3", has_updater: false, decommissioned: true },
    ],
    tableRows: ["active", "decommissioned"],
  });
});

test("host names that are not DNS labels are refused at enroll, with nothing written", async () => {
  const bad = ["has.dot", "-lead", "trail-", "under_score", "x".repeat(64), "spa ce"];
  const results = [];
  for (const name of bad) {
    const r = await fleet.cli(["swarm", "enroll", `--host=${name}`, "--address", "127.0.9.4"]);
    results.push({ code: r.code, line: r.stderr.includes("is not a DNS label") && r.stderr.split("\n").length === 2 });
  }
  expect(results).toEqual(bad.map(() => ({ code: 2, line: true })));
  const list = JSON.parse((await fleet.cli(["swarm", "list", "--json"])).stdout) as Array<{ name: string }>;
  expect(list.map((h) => h.name).filter((n) => bad.includes(n))).toEqual([]);
});
