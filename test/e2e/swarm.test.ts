/**
 * The operator's push commands against real updaters on loopback: one host, a
 * comma list, --all (decommissioned skipped), a mix of outcomes, --dry-run
 * with every worker down, --json against the table, rollback and releases,
 * and the push history in the registry.
 */
import { beforeAll, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { hostDependentRelease, release, type CliResult } from "../fleet/harness.ts";
import { readReleaseManifest } from "../../src/core/release.ts";
import { useFleet } from "../fleet/use-fleet.ts";

const fleet = useFleet({ workers: 5, env: { DECNET_PROBE_TIMEOUT_MS: "3000", NO_COLOR: "1" }, start: ["w1", "w2", "w3", "w5"] });
beforeAll(async () => {
  expect((await fleet.cli(["swarm", "decommission", "--host", "w4"])).code).toBe(0);
});

/** Table rows as {host: [agent, self]}, from `swarm update` output. */
function rows(r: CliResult): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const line of r.stdout.split("\n").slice(1)) {
    const f = line.split(/\s+/);
    if (f[0]) out[f[0]] = [f[2]!, f[3]!];
  }
  return out;
}

test("push to one host, then to a comma list", async () => {
  const v1 = await release("v1");
  const one = await fleet.cli(["swarm", "update", "--host", "w1", "--artifact", v1.file]);
  const two = await fleet.cli(["swarm", "update", "--host", "w2,w3", "--artifact", v1.file]);
  expect({ one: [one.code, rows(one)], two: [two.code, rows(two)] }).toEqual({
    one: [0, { w1: ["updated", "—"] }],
    two: [0, { w2: ["updated", "—"], w3: ["updated", "—"] }],
  });
  expect(one.stderr).toContain(`release ${v1.version} ${v1.id.slice(0, 12)}`);
});

test("--all skips decommissioned hosts, and --json matches the table", async () => {
  const v2 = await release("v2");
  const size = Bun.file(v2.file).size;
  // A release's size is its unpacked bytes, whatever travels.
  const unpacked = (await readReleaseManifest(v2.file)).files.reduce((n, f) => n + f.size, 0);
  const table = await fleet.cli(["swarm", "update", "--all", "--artifact", v2.file]);
  // The same release again: every host answers "updated" without a restart.
  const json = await fleet.update(["--all", "--artifact", v2.file]);
  const report = json.report!;
  expect({
    codes: [table.code, json.code],
    table: rows(table),
    release: report.release as object,
    hosts: Object.fromEntries(report.hosts.map((h) => [h.host, [h.agent, h.self]])),
    // The second push of the same release is a delta of nothing but a header.
    fields: report.hosts.map((h) => ({ keys: Object.keys(h).sort(), small: h.bytes_sent > 0 && h.bytes_sent < size / 100, id: h.release_id, timed: h.duration_ms > 0 })),
  }).toEqual({
    codes: [0, 0],
    table: { w1: ["updated", "—"], w2: ["updated", "—"], w3: ["updated", "—"], w5: ["updated", "—"] },
    release: { id: v2.id, version: v2.version, size: unpacked, signer: null },
    hosts: { w1: ["updated", null], w2: ["updated", null], w3: ["updated", null], w5: ["updated", null] },
    fields: ["w1", "w2", "w3", "w5"].map(() => ({ keys: ["address", "agent", "bytes_sent", "detail", "duration_ms", "error_code", "host", "identity", "install", "previous", "release_id", "self", "self_transfer", "signer", "transfer"], small: true, id: v2.id, timed: true })),
  });
});

test("a mix of outcomes in one run (healthy, rolled back, unreachable) gives the right rows and exit 1", async () => {
  const [, w2, w3] = ["w1", "w2", "w3"].map((n) => fleet.worker(n));
  const mixed = await hostDependentRelease(w2!.address, join(fleet.root, "mixed.tar.gz"));
  process.kill(fleet.pid(w3!, "updater"), "SIGKILL");
  const r = await fleet.update(["--host", "w1,w2,w3", "--artifact", mixed.file]);
  const hosts = Object.fromEntries(r.report!.hosts.map((h) => [h.host, h]));
  expect({
    code: r.code,
    outcomes: { w1: hosts.w1!.agent, w2: hosts.w2!.agent, w3: hosts.w3!.agent },
    w2SaysWhy: hosts.w2!.detail!.includes("this host lacks /etc/decnet/needed.conf"),
    w3SaysWhat: hosts.w3!.detail!.startsWith(`connection refused by ${w3!.address}:8766`) && hosts.w3!.detail!.includes("decnet updater --daemon"),
  }).toEqual({ code: 1, outcomes: { w1: "updated", w2: "rolled-back", w3: "error" }, w2SaysWhy: true, w3SaysWhat: true });
  const table = await fleet.cli(["swarm", "update", "--host", "w3", "--artifact", mixed.file]);
  // Every update is a rollout (DESIGN §12): an unreachable host is skipped, not a release failure, and the summary counts each kind.
  const summary = table.stderr.trim().split("\n").at(-1)!;
  expect({ code: table.code, rows: rows(table), stderr: summary.replace(/rollout [0-9a-f]{8}/, "rollout ID") }).toEqual({
    code: 1,
    rows: { w3: ["skipped", "—"] },
    stderr: "decnet: rollout ID done: 0 updated, 0 failed, 1 skipped (unreachable), 0 pending — see the detail column",
  });
});

test("--dry-run with every worker down succeeds and lists the release and the hosts", async () => {
  for (const n of ["w1", "w2", "w5"]) process.kill(fleet.pid(fleet.worker(n), "updater"), "SIGKILL");
  const v1 = await release("v1");
  const r = await fleet.cli(["swarm", "update", "--all", "--artifact", v1.file, "--dry-run"]);
  expect({ code: r.code, out: r.stdout }).toEqual({
    code: 0,
    out: `dry run: would push ${v1.version} ${v1.id.slice(0, 12)} (${(await readReleaseManifest(v1.file)).files.reduce((n, f) => n + f.size, 0)} bytes) to 4 host(s):\n${["w1", "w2", "w3", "w5"].map((n) => `  ${n}  ${fleet.worker(n).address}`).join("\n")}\n`,
  });
});

test("rollback and releases round trip; rollback with no previous fails cleanly", async () => {
  for (const n of ["w1", "w5"]) await fleet.startUpdater(fleet.worker(n));
  const v2 = await release("v2");
  const before = JSON.parse((await fleet.cli(["swarm", "releases", "--host", "w1", "--json"])).stdout);
  const rb = await fleet.cli(["swarm", "rollback", "--host", "w1"]);
  const after = JSON.parse((await fleet.cli(["swarm", "releases", "--host", "w1", "--json"])).stdout);
  const table = await fleet.cli(["swarm", "releases", "--host", "w1"]);
  const none = await fleet.cli(["swarm", "rollback", "--host", "w5"]);
  expect({
    before: { previous: before.previous },
    rb: [rb.code, rb.stdout.startsWith(`w1: rolled back to ${v2.version} ${v2.id.slice(0, 12)}`)],
    after: { current: after.current, previous: after.previous === before.current },
    tableCurrent: table.stdout.split("\n").find((l) => l.endsWith("current"))?.startsWith(v2.id.slice(0, 12)),
    none: [none.code, none.stderr],
  }).toEqual({
    before: { previous: v2.id },
    rb: [0, true],
    after: { current: v2.id, previous: true },
    tableCurrent: true,
    none: [1, "decnet: w5: has no previous release to roll back to — push a release first: `decnet swarm update --host w5`\n"],
  });
});

test("the registry keeps every push: who, what, where, when, outcome", async () => {
  const db = new Database(join(fleet.env.DECNET_HOME!, "swarm.db"), { readonly: true });
  const w1 = db.query("SELECT kind, outcome, operator, at FROM pushes WHERE host = 'w1' ORDER BY id").all() as Array<{ kind: string; outcome: string; operator: string; at: string }>;
  db.close();
  expect(w1.map((p) => `${p.kind}:${p.outcome}`)).toEqual(["update:updated", "update:updated", "update:updated", "update:updated", "rollback:updated"]);
  expect(w1.every((p) => p.operator.includes("@") && !Number.isNaN(Date.parse(p.at)))).toBe(true);
  const list = await fleet.cli(["swarm", "list"]);
  expect(list.stdout.split("\n").find((l) => l.startsWith("w1 "))).toContain("rollback: updated");
});

test("on a terminal: live per-host progress redrawn in place and coloured outcomes; elsewhere plain lines, no escapes", async () => {
  const v1 = await release("v1");
  const cmd = `${fleet.bin} swarm update --host w1 --artifact ${v1.file}`;
  // `script` gives the command a real pty, as an operator's terminal would.
  const p = Bun.spawn(["script", "-qec", cmd, "/dev/null"], { env: { ...process.env, ...fleet.env, NO_COLOR: "" }, stdout: "pipe", stderr: "pipe" });
  const [tty, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
  const plain = await fleet.cli(["swarm", "update", "--host", "w1", "--artifact", v1.file], { env: { NO_COLOR: "" } });
  expect({
    code,
    redrawn: /\x1b\[\d+A/.test(tty) && tty.includes("\x1b[2K  w1  "),
    green: tty.includes("\x1b[32mupdated\x1b[0m"),
    plainCode: plain.code,
    plainEscapes: /\x1b\[/.test(plain.stdout + plain.stderr),
    plainLines: plain.stderr.split("\n").filter((l) => l.startsWith("w1: ")).map((l) => l.split(" ")[1]),
  }).toEqual({ code: 0, redrawn: true, green: true, plainCode: 0, plainEscapes: false, plainLines: ["uploading", "installing,", "checking", "updated"] });
});
