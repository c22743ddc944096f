/**
 * install.sh the way an operator runs it: into a staging root (twice, the
 * second run changing nothing), with verified units; onto a real dir with
 * --no-systemd, then daemons started by hand take a push and a rollback; and
 * its clear errors.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { cpSync, mkdirSync, readFileSync, readlinkSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Fleet, ROOT, release, runCli, type Worker } from "../fleet/harness.ts";

// Real daemons and 50 MB releases; set per file (a preload only reaches the first file).
setDefaultTimeout(90_000);

let fleet: Fleet;
let w: Worker;
beforeAll(async () => {
  fleet = await Fleet.create({ workers: 1 });
  w = fleet.worker("w1");
}, 180_000);
afterAll(() => fleet[Symbol.asyncDispose]());

async function install(args: string[], env: Record<string, string> = {}, prefix: string[] = []) {
  const p = Bun.spawn([...prefix, "sh", join(ROOT, "install.sh"), ...args], { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

/** Every path under `dir` with its type, mode and (for files) size and mtime. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      const st = statSync(p, { throwIfNoEntry: false }) ?? null;
      const l = (() => { try { return readlinkSync(p); } catch { return null; } })();
      out[p.slice(dir.length)] = l ? `-> ${l}` : st?.isDirectory() ? `dir ${(st.mode & 0o777).toString(8)}` : `${(st!.mode & 0o777).toString(8)} ${st!.size} ${st!.mtimeMs}`;
      if (!l && st?.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

test("install.sh --root, twice: layout, units, bundles and modes right; the second run changes nothing; units verify", async () => {
  const root = join(fleet.root, "image");
  const args = ["--binary", fleet.bin, "--bundle", w.agentBundle, "--updater-bundle", w.updaterBundle, "--root", root];
  const env = { DECNET_HOME: "/var/lib/decnet" };
  const first = await install(args, env);
  const after1 = tree(root);
  const second = await install(args, env);
  const id = readlinkSync(join(root, "opt/decnet/current")).replace("releases/", "");
  const version = JSON.parse((await runCli(join(root, "opt/decnet/current/decnet"), ["version", "--json"], {})).stdout);
  const unit = readFileSync(join(root, "etc/systemd/system/decnet-updater.service"), "utf8");
  expect({
    codes: [first.code, second.code],
    second: second.stdout.trim().split("\n").at(-1),
    unchanged: tree(root),
    runs: { release: version.release },
    slots: { agent: readlinkSync(join(root, "opt/decnet/current")), updater: readlinkSync(join(root, "opt/decnet/updater/current")) },
    files: readdirSync(join(root, "opt/decnet/releases", id)).sort(),
    modes: {
      agentDir: after1["/var/lib/decnet/agent"],
      agentKey: after1["/var/lib/decnet/agent/worker.key"]!.split(" ")[0],
      updaterKey: after1["/var/lib/decnet/updater/updater.key"]!.split(" ")[0],
      exe: after1[`/opt/decnet/releases/${id}/decnet`]!.split(" ")[0],
    },
    enabled: readdirSync(join(root, "etc/systemd/system/multi-user.target.wants")).sort(),
    execStart: unit.split("\n").find((l) => l.startsWith("ExecStart=")),
  }).toEqual({
    codes: [0, 0],
    second: `install.sh: installed release ${id.slice(0, 12)} in ${root}/opt/decnet (0 change(s))`,
    unchanged: after1,
    runs: { release: id },
    slots: { agent: `releases/${id}`, updater: `releases/${id}` },
    files: ["decnet", "manifest.json"],
    modes: { agentDir: "dir 700", agentKey: "600", updaterKey: "600", exe: "755" },
    enabled: ["decnet-agent.service", "decnet-updater.service"],
    execStart: "ExecStart=/opt/decnet/updater/current/decnet updater --install-dir /opt/decnet --updater-dir /var/lib/decnet/updater --agent-dir /var/lib/decnet/agent --agent-supervisor systemd",
  });
  // systemd's own units, so that `verify` can resolve the targets the units name.
  mkdirSync(join(root, "lib/systemd"), { recursive: true });
  cpSync("/lib/systemd/system", join(root, "lib/systemd/system"), { recursive: true });
  const verify = Bun.spawnSync(["systemd-analyze", "verify", `--root=${root}`, "/etc/systemd/system/decnet-updater.service", "/etc/systemd/system/decnet-agent.service"], { stderr: "pipe" });
  expect({ code: verify.exitCode, stderr: verify.stderr.toString() }).toEqual({ code: 0, stderr: "" });
});

test("a worker installed with --no-systemd, daemons started by hand, accepts a push and a rollback to its first release", async () => {
  const home = join(fleet.root, "worker-home");
  const r = await install(["--binary", fleet.bin, "--bundle", w.agentBundle, "--updater-bundle", w.updaterBundle, "--install-dir", w.installDir, "--no-systemd"], { DECNET_HOME: home });
  expect(r.code).toBe(0);
  const first = readlinkSync(w.paths.current).replace("releases/", "");
  const up = await runCli(join(w.installDir, "updater/current/decnet"), ["updater", "--host", w.address, "--install-dir", w.installDir, "--updater-dir", join(home, "updater"), "--agent-dir", join(home, "agent"), "--daemon"], fleet.env);
  expect(up.code).toBe(0);
  const v2 = await release("v2");
  const push = await fleet.cli(["swarm", "update", "--host", "w1", "--artifact", v2.file, "--json"]);
  const back = await fleet.cli(["swarm", "rollback", "--host", "w1"]);
  const h = await fleet.health(w);
  expect({ push: [push.code, JSON.parse(push.stdout).hosts[0].agent], rollback: back.code, agent: h.agent.release, healthy: h.agent.healthy }).toEqual({
    push: [0, "updated"], rollback: 0, agent: first, healthy: true,
  });
});

test("clear errors: a missing bundle, a wrong architecture, no root", async () => {
  const root = join(fleet.root, "errors");
  const missing = await install(["--binary", fleet.bin, "--bundle", join(fleet.root, "nope"), "--updater-bundle", w.updaterBundle, "--root", root]);
  const swapped = await install(["--binary", fleet.bin, "--bundle", w.updaterBundle, "--updater-bundle", w.updaterBundle, "--root", root]);
  // An ELF header for aarch64 on this x86_64 machine (or the reverse).
  const foreign = join(fleet.root, "foreign");
  const elf = new Uint8Array(64);
  elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  elf[18] = process.arch === "arm64" ? 0x3e : 0xb7;
  writeFileSync(foreign, elf);
  const arch = await install(["--binary", foreign, "--bundle", w.agentBundle, "--updater-bundle", w.updaterBundle, "--root", root]);
  const nobody = await install(["--binary", fleet.bin, "--bundle", w.agentBundle, "--updater-bundle", w.updaterBundle, "--no-systemd"], {}, ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]);
  const usage = await install(["--bundle", w.agentBundle]);
  expect({
    missing: [missing.code, missing.stderr.includes(`bundle dir ${join(fleet.root, "nope")} does not exist`)],
    swapped: [swapped.code, swapped.stderr.includes("lacks worker.crt")],
    arch: [arch.code, /is built for (aarch64|x86_64), this machine is/.test(arch.stderr)],
    nobody: [nobody.code, nobody.stderr.includes("must run as root")],
    usage: [usage.code, usage.stderr.includes("give --binary PATH or --url URL")],
    wroteNothing: (() => { try { return readdirSync(root).length; } catch { return 0; } })(),
  }).toEqual({ missing: [1, true], swapped: [1, true], arch: [1, true], nobody: [1, true], usage: [2, true], wroteNothing: 0 });
});

test("install.sh --url downloads the binary and checks --sha256: a match installs, a mismatch is refused with nothing written", async () => {
  const bytes = await Bun.file(fleet.bin).bytes();
  // A file server on loopback, as `curl | sh -s -- --url …` would reach one.
  await using server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response(bytes) });
  const url = `http://127.0.0.1:${server.port}/decnet-linux-x64`;
  const sha = new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
  const good = join(fleet.root, "url-good");
  const bad = join(fleet.root, "url-bad");
  const base = ["--url", url, "--bundle", w.agentBundle, "--updater-bundle", w.updaterBundle, "--no-systemd"];
  const ok = await install([...base, "--sha256", sha, "--root", good]);
  const wrong = await install([...base, "--sha256", "0".repeat(64), "--root", bad]);
  expect({
    ok: [ok.code, readlinkSync(join(good, "opt/decnet/current")).startsWith("releases/")],
    wrong: [wrong.code, wrong.stderr.includes(`expected ${"0".repeat(64)}`), readdirSync(bad).length],
  }).toEqual({ ok: [0, true], wrong: [1, true, 0] });
});
