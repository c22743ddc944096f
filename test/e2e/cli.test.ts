/**
 * Every subcommand has a case here (the type checker enforces it): the
 * compiled binary run as an operator would, bad usage exiting 2 with one
 * line, failures exiting 1 with one line and never a stack trace.
 */
import { expect, test } from "bun:test";
import { mkdirSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { commands } from "../../src/cli/index.ts";
import type { releaseCommands } from "../../src/cli/release/index.ts";
import type { swarmCommands } from "../../src/cli/swarm/index.ts";
import type { trustCommands } from "../../src/cli/trust/index.ts";
import { FIXTURES, ROOT, type CliResult } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";

type CommandName =
  | Exclude<keyof typeof commands, "swarm" | "release" | "trust">
  | `swarm ${keyof typeof swarmCommands}`
  | `release ${keyof typeof releaseCommands}`
  | `trust ${keyof typeof trustCommands}`;

const fleet = useFleet({ workers: 1 });

/** A fresh trust dir made by `trust init`, with its signing key's id. */
async function trustDir(name: string): Promise<{ dir: string; signer: string }> {
  const dir = join(fleet.root, "trust", name);
  const r = await fleet.cli(["trust", "init", "--dir", dir]);
  if (r.code !== 0) throw new Error(r.stderr);
  return { dir, signer: /signing key ([0-9a-f]{16})/.exec(r.stdout)![1]! };
}
const showJson = async (dir: string) => JSON.parse((await fleet.cli(["trust", "show", "--dir", dir, "--json"])).stdout);
const mode = (p: string) => (statSync(p).mode & 0o777).toString(8);

/** One line on stderr, no stack frames. */
const oneLine = (r: CliResult) => r.stderr.trim().split("\n").length === 1 && !/\n\s+at |\.ts:\d+/.test(r.stderr);

const cases: Record<CommandName, "todo" | (() => Promise<void>)> = {
  async version() {
    const r = await fleet.cli(["version", "--json"]);
    const v = JSON.parse(r.stdout);
    expect({ code: r.code, keys: Object.keys(v).sort(), version: v.version, sha: /^[0-9a-f]{40}$|^unknown$/.test(v.git.sha), release: v.release }).toEqual({
      code: 0,
      keys: ["built_at", "git", "release", "target", "version"],
      version: JSON.parse(await Bun.file(join(ROOT, "package.json")).text()).version,
      sha: true,
      release: null,
    });
  },
  async agent() {
    const w = fleet.worker("w1");
    const r = await fleet.cli(["agent", "--host", w.address, "--agent-dir", join(fleet.root, "nowhere"), "--install-dir", w.installDir, "--daemon"]);
    expect({ code: r.code, oneLine: oneLine(r), names: r.stderr.includes(join(fleet.root, "nowhere", "ca.crt")) }).toEqual({ code: 1, oneLine: true, names: true });
  },
  async updater() {
    const w = fleet.worker("w1");
    const r = await fleet.cli(["updater", "--host", w.address, "--updater-dir", w.agentBundle, "--agent-dir", w.agentBundle, "--install-dir", w.installDir]);
    // The agent bundle has no updater.crt: a wrong bundle dir is named, nothing starts.
    expect({ code: r.code, oneLine: oneLine(r), names: r.stderr.includes("updater.crt is missing") }).toEqual({ code: 1, oneLine: true, names: true });
    const badToken = await fleet.cli(["updater", "--host", w.address, "--updater-dir", join(fleet.root, "joining"), "--install-dir", w.installDir, "--join", "not-a-token"]);
    expect({ code: badToken.code, line: badToken.stderr }).toEqual({ code: 2, line: "decnet: not a join token (a join token begins with decnet-join:)\n" });
  },
  async "swarm enroll"() {
    const r = await fleet.cli(["swarm", "enroll", "--host", "x1"]);
    expect({ code: r.code, oneLine: oneLine(r), says: r.stderr.includes("--address") }).toEqual({ code: 2, oneLine: true, says: true });
  },
  async "swarm join"() {
    const none = await fleet.cli(["swarm", "join", "ghost"]);
    // An open join whose worker is not there (an address of this fleet's block nothing listens on).
    const address = fleet.worker("w1").address.replace(/\.\d+$/, ".200");
    const open = await fleet.cli(["swarm", "enroll", "--host", "x9", "--address", address, "--join", "--no-wait", "--ttl", "5m"]);
    const absent = await fleet.cli(["swarm", "join", "x9"]);
    const badTtl = await fleet.cli(["swarm", "enroll", "--host", "x8", "--address", address, "--join", "--ttl", "soon"]);
    const withBundles = await fleet.cli(["swarm", "enroll", "--host", "x8", "--address", address, "--join", "--updater"]);
    expect({
      none: [none.code, none.stderr],
      open: [open.code, /^decnet-join:1:x9:[0-9a-f]{64}:\S+$/m.test(open.stdout), open.stdout.includes("then, once the worker waits: decnet swarm join x9")],
      absent: [absent.code, oneLine(absent), absent.stderr.startsWith(`decnet: x9: no updater waiting to join at ${address}:8766`)],
      badTtl: [badTtl.code, badTtl.stderr],
      withBundles: [withBundles.code, oneLine(withBundles)],
    }).toEqual({
      none: [2, "decnet: no join is open for ghost — open one with `decnet swarm enroll --host ghost --address ADDR --join`\n"],
      open: [0, true, true],
      absent: [1, true, true],
      badTtl: [2, "decnet: --ttl \"soon\" is not a duration — write it as a whole number of s, m or h, e.g. 30m\n"],
      withBundles: [2, true],
    });
  },
  async "swarm renew"() {
    const none = await fleet.cli(["swarm", "renew"]);
    // No updater runs on w1 in this file: the row says why, the exit is 1.
    const r = await fleet.cli(["swarm", "renew", "--host", "w1", "--json"]);
    const rows = JSON.parse(r.stdout) as Array<{ host: string; outcome: string; detail: string }>;
    expect({ none: [none.code, oneLine(none)], code: r.code, rows: rows.map((x) => [x.host, x.outcome, x.detail.startsWith("connection refused by")]) }).toEqual({
      none: [2, true], code: 1, rows: [["w1", "error", true]],
    });
  },
  async "swarm crl"() {
    const none = await fleet.cli(["swarm", "crl", "push"]);
    const r = await fleet.cli(["swarm", "crl", "push", "--host", "w1"]);
    expect({ none: [none.code, oneLine(none)], code: r.code, says: r.stderr.includes("1 of 1 host(s) did not take CRL #") }).toEqual({ none: [2, true], code: 1, says: true });
  },
  async "swarm list"() {
    const r = await fleet.cli(["swarm", "list", "--json"]);
    expect({ code: r.code, hosts: JSON.parse(r.stdout).map((h: { name: string }) => h.name) }).toEqual({ code: 0, hosts: ["w1"] });
  },
  async "swarm decommission"() {
    const r = await fleet.cli(["swarm", "decommission"]);
    expect({ code: r.code, oneLine: oneLine(r) }).toEqual({ code: 2, oneLine: true });
  },
  async "swarm update"() {
    const r = await fleet.cli(["swarm", "update", "--host", "w1", "--artifact", join(FIXTURES, "agent-exits.sh"), "--dry-run"]);
    expect({ code: r.code, says: /dry run: would push agent-exits [0-9a-f]{12} \(\d+ bytes\) to 1 host/.test(r.stdout) }).toEqual({ code: 0, says: true });
    const both = await fleet.cli(["swarm", "update", "--host", "w1", "--all", "--dry-run"]);
    expect({ code: both.code, oneLine: oneLine(both) }).toEqual({ code: 2, oneLine: true });
  },
  async "swarm rollout"() {
    const list = await fleet.cli(["swarm", "rollout", "list", "--json"]);
    const show = await fleet.cli(["swarm", "rollout", "show", "nope"]);
    const abort = await fleet.cli(["swarm", "rollout", "abort"]);
    expect({ list: [list.code, JSON.parse(list.stdout)], show: [show.code, show.stderr], abort: [abort.code, oneLine(abort)] }).toEqual({
      list: [0, []],
      show: [2, "decnet: no rollout nope — see `decnet swarm rollout list`\n"],
      abort: [2, true],
    });
  },
  async "swarm rollback"() {
    const r = await fleet.cli(["swarm", "rollback", "--host", "ghost"]);
    expect({ code: r.code, line: r.stderr }).toEqual({ code: 2, line: "decnet: no host named ghost is enrolled — see `decnet swarm list`\n" });
  },
  async "swarm releases"() {
    // No updater is running on w1 in this file: one line with the likely cause.
    const r = await fleet.cli(["swarm", "releases", "--host", "w1"]);
    expect({ code: r.code, oneLine: oneLine(r), cause: r.stderr.includes("decnet updater --daemon") }).toEqual({ code: 1, oneLine: true, cause: true });
  },
  async "swarm status"() {
    // No updater runs on w1 in this file: its row says unreachable and why, exit 1; an unknown host is bad usage.
    const r = await fleet.cli(["swarm", "status", "--json", "--timeout-ms", "500"]);
    const row = JSON.parse(r.stdout).hosts[0];
    const ghost = await fleet.cli(["swarm", "status", "--host", "ghost"]);
    expect({ code: r.code, host: row.host, reachable: row.reachable, error: row.error.code, ghost: [ghost.code, oneLine(ghost)] }).toEqual({ code: 1, host: "w1", reachable: false, error: "unreachable", ghost: [2, true] });
  },
  async "swarm logs"() {
    const ghost = await fleet.cli(["swarm", "logs", "--host", "ghost"]);
    const bad = await fleet.cli(["swarm", "logs", "--host", "w1", "-n", "0"]);
    const down = await fleet.cli(["swarm", "logs", "--host", "w1"]);
    expect({ ghost: [ghost.code, ghost.stderr], bad: [bad.code, oneLine(bad)], down: [down.code, oneLine(down), down.stderr.includes("decnet updater --daemon")] }).toEqual({
      ghost: [2, "decnet: no host named ghost is enrolled — see `decnet swarm list`\n"],
      bad: [2, true],
      down: [1, true, true],
    });
  },
  async "swarm operator"() {
    const r = await fleet.cli(["swarm", "operator", "revoke", "ghost"]);
    expect({ code: r.code, line: r.stderr }).toEqual({ code: 2, line: "decnet: no operator named ghost — operators are added with `decnet swarm operator add NAME --out DIR`\n" });
  },
  async "swarm rotate-master"() {
    // Its own home: the rest of this file keeps the fleet's master identity.
    const r = await fleet.cli(["swarm", "rotate-master"], { env: { DECNET_HOME: join(fleet.root, "home-rotate") } });
    expect({ code: r.code, says: /^new master identity: serial [0-9a-f]{32}, valid until /.test(r.stdout) }).toEqual({ code: 0, says: true });
  },
  async "swarm history"() {
    const ghost = await fleet.cli(["swarm", "history", "--host", "ghost"]);
    const bad = await fleet.cli(["swarm", "history", "--limit", "0"]);
    const none = await fleet.cli(["swarm", "history", "--json"]);
    expect({ ghost: [ghost.code, oneLine(ghost)], bad: [bad.code, oneLine(bad)], none: [none.code, Array.isArray(JSON.parse(none.stdout))] }).toEqual({ ghost: [2, true], bad: [2, true], none: [0, true] });
  },
  async "swarm registry"() {
    const notPg = await fleet.cli(["swarm", "registry", "migrate", "--to", "mysql://db/decnet"]);
    const noFlag = await fleet.cli(["swarm", "registry", "migrate"]);
    expect({ notPg: [notPg.code, oneLine(notPg)], noFlag: [noFlag.code, oneLine(noFlag)] }).toEqual({ notPg: [2, true], noFlag: [2, true] });
  },
  async "swarm trust"() {
    // No host named: bad usage, one line; no trust.json on this master: a failure naming it.
    const none = await fleet.cli(["swarm", "trust", "push"]);
    const noDoc = await fleet.cli(["swarm", "trust", "push", "--all"]);
    expect({ none: [none.code, oneLine(none)], noDoc: [noDoc.code, oneLine(noDoc), noDoc.stderr.includes("trust.json")] }).toEqual({ none: [2, true], noDoc: [1, true, true] });
  },
  async "release build"() {
    const out = join(fleet.root, "built.tar.gz");
    const r = await fleet.cli(["release", "build", "--out", out], { cwd: ROOT });
    expect({ code: r.code, says: /^release \S+ [0-9a-f]{12} \(linux-x64, [\d.]+ MB\) from build of /.test(r.stdout) }).toEqual({ code: 0, says: true });
    const away = await fleet.cli(["release", "build"], { cwd: fleet.root });
    expect({ code: away.code, oneLine: oneLine(away) }).toEqual({ code: 2, oneLine: true });
  },
  async "release pack"() {
    const dir = join(fleet.root, "pack");
    mkdirSync(dir, { recursive: true });
    const r = await fleet.cli(["release", "pack", join(FIXTURES, "agent-silent.sh"), "--out", join(dir, "s.tgz")]);
    const manifest = JSON.parse((await Bun.$`tar xzOf ${join(dir, "s.tgz")} manifest.json`.quiet()).stdout.toString());
    // The release id, recomputed the way DESIGN §3 says anyone can: with sha256sum.
    const f = manifest.files[0];
    writeFileSync(join(dir, "id.txt"), `${f.sha256} ${f.mode} ${f.size} ${f.path}\n`);
    const byHand = (await Bun.$`sha256sum ${join(dir, "id.txt")}`.quiet()).stdout.toString().slice(0, 64);
    expect({ code: r.code, version: manifest.version, id: manifest.id }).toEqual({ code: 0, version: "agent-silent", id: byHand });
  },
  async "release sign"() {
    const { dir, signer } = await trustDir("sign");
    const file = join(fleet.root, "pack", "to-sign.tgz");
    mkdirSync(join(fleet.root, "pack"), { recursive: true });
    await fleet.cli(["release", "pack", join(FIXTURES, "agent-silent.sh"), "--version", "0.1.0", "--out", file]);
    const idBefore = JSON.parse((await Bun.$`tar xzOf ${file} manifest.json`.quiet()).stdout.toString()).id;
    const r = await fleet.cli(["release", "sign", file, "--trust-dir", dir]);
    const sig = JSON.parse((await Bun.$`tar xzOf ${file} signature.json`.quiet()).stdout.toString());
    expect({
      code: r.code,
      entries: (await Bun.$`tar tzf ${file}`.quiet()).stdout.toString(),
      id: JSON.parse((await Bun.$`tar xzOf ${file} manifest.json`.quiet()).stdout.toString()).id,
      covers: sig.release,
      signer: sig.signer.id,
    }).toEqual({ code: 0, entries: "manifest.json\nsignature.json\ndecnet\n", id: idBefore, covers: { id: idBefore, version: "0.1.0", target: "linux-x64" }, signer });
  },
  async "trust init"() {
    const dir = join(fleet.root, "trust", "init");
    const r = await fleet.cli(["trust", "init", "--dir", dir]);
    const again = await fleet.cli(["trust", "init", "--dir", dir]);
    expect({
      code: r.code,
      fingerprint: /^root key fingerprint [0-9a-f]{64} \(id [0-9a-f]{16}\)$/m.test(r.stdout),
      modes: ["", "/root.key", "/signing.key", "/trust.json"].map((f) => mode(dir + f)),
      again: { code: again.code, oneLine: oneLine(again) },
    }).toEqual({ code: 0, fingerprint: true, modes: ["700", "600", "600", "644"], again: { code: 2, oneLine: true } });
  },
  async "trust show"() {
    const { dir, signer } = await trustDir("show");
    const v = await showJson(dir);
    const missing = await fleet.cli(["trust", "show", "--dir", join(dir, "nowhere")]);
    expect({ version: v.version, signers: v.signers.map((s: { id: string }) => s.id), revoked: v.revoked, floor: v.floor, missing: { code: missing.code, names: missing.stderr.includes(join(dir, "nowhere", "trust.json")) } }).toEqual({
      version: 1,
      signers: [signer],
      revoked: [],
      floor: null,
      missing: { code: 1, names: true },
    });
  },
  async "trust add-signer"() {
    const { dir } = await trustDir("add");
    renameSync(join(dir, "root.key"), join(fleet.root, "trust", "add-root.key"));
    const offline = await fleet.cli(["trust", "add-signer", "--dir", dir]);
    const r = await fleet.cli(["trust", "add-signer", "--dir", dir, "--root-key", join(fleet.root, "trust", "add-root.key"), "--out", join(dir, "ci.key")]);
    expect({ offline: { code: offline.code, line: offline.stderr }, code: r.code, mode: mode(join(dir, "ci.key")), version: (await showJson(dir)).version }).toEqual({
      offline: { code: 2, line: "decnet: the root key is offline: pass --root-key FILE\n" },
      code: 0,
      mode: "600",
      version: 2,
    });
  },
  async "trust revoke-signer"() {
    const { dir, signer } = await trustDir("revoke");
    const r = await fleet.cli(["trust", "revoke-signer", signer, "--dir", dir]);
    const v = await showJson(dir);
    expect({ code: r.code, signers: v.signers, revoked: v.revoked }).toEqual({ code: 0, signers: [], revoked: [signer] });
  },
  async "trust floor"() {
    const { dir } = await trustDir("floor");
    const r = await fleet.cli(["trust", "floor", "0.2.0", "--dir", dir]);
    const bad = await fleet.cli(["trust", "floor", "latest", "--dir", dir]);
    expect({ code: r.code, floor: (await showJson(dir)).floor, bad: { code: bad.code, oneLine: oneLine(bad) } }).toEqual({ code: 0, floor: "0.2.0", bad: { code: 2, oneLine: true } });
  },
  async "trust rotate-root"() {
    const { dir } = await trustDir("rotate");
    const out = join(fleet.root, "trust", "rotate-new-root.key");
    const r = await fleet.cli(["trust", "rotate-root", "--dir", dir, "--new-root-out", out]);
    const newId = /replaced by ([0-9a-f]{16})/.exec(r.stdout)?.[1];
    const v = await showJson(dir);
    expect({ code: r.code, mode: mode(out), roots: v.roots.map((x: { id: string }) => x.id), version: v.version }).toEqual({ code: 0, mode: "600", roots: [newId], version: 2 });
  },
};

for (const [name, run] of Object.entries(cases)) {
  if (run === "todo") test.todo(`decnet ${name}`);
  else test(`decnet ${name}`, run);
}

test("unknown options, missing required options and no command are usage errors (exit 2, one line)", async () => {
  const runs = await Promise.all([
    fleet.cli(["version", "--bogus"]),
    fleet.cli(["swarm", "list", "--colour"]),
    fleet.cli(["swarm", "enroll", "--address", "127.0.0.1"]),
    fleet.cli(["swarm", "nope"]),
  ]);
  const bare = await fleet.cli([]);
  expect([...runs.map((r) => ({ code: r.code, oneLine: oneLine(r) })), { code: bare.code, oneLine: true }]).toEqual(runs.map(() => ({ code: 2, oneLine: true })).concat([{ code: 2, oneLine: true }]));
  expect(runs[0]!.stderr).toBe("decnet: unknown option --bogus\n");
});
