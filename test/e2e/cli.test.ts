/**
 * Every subcommand has a case here (the type checker enforces it): the
 * compiled binary run as an operator would, bad usage exiting 2 with one
 * line, failures exiting 1 with one line and never a stack trace.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { commands } from "../../src/cli/index.ts";
import type { releaseCommands } from "../../src/cli/release/index.ts";
import type { swarmCommands } from "../../src/cli/swarm/index.ts";
import { Fleet, FIXTURES, ROOT, type CliResult } from "../fleet/harness.ts";

// Real daemons and 50 MB releases; set per file (a preload only reaches the first file).
setDefaultTimeout(90_000);

type CommandName =
  | Exclude<keyof typeof commands, "swarm" | "release">
  | `swarm ${keyof typeof swarmCommands}`
  | `release ${keyof typeof releaseCommands}`;

let fleet: Fleet;
beforeAll(async () => {
  fleet = await Fleet.create({ workers: 1 });
}, 180_000);
afterAll(() => fleet[Symbol.asyncDispose]());

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
  },
  async "swarm enroll"() {
    const r = await fleet.cli(["swarm", "enroll", "--host", "x1"]);
    expect({ code: r.code, oneLine: oneLine(r), says: r.stderr.includes("--address") }).toEqual({ code: 2, oneLine: true, says: true });
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
  async "swarm rollback"() {
    const r = await fleet.cli(["swarm", "rollback", "--host", "ghost"]);
    expect({ code: r.code, line: r.stderr }).toEqual({ code: 2, line: "decnet: no host named ghost is enrolled — see `decnet swarm list`\n" });
  },
  async "swarm releases"() {
    // No updater is running on w1 in this file: one line with the likely cause.
    const r = await fleet.cli(["swarm", "releases", "--host", "w1"]);
    expect({ code: r.code, oneLine: oneLine(r), cause: r.stderr.includes("decnet updater --daemon") }).toEqual({ code: 1, oneLine: true, cause: true });
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
