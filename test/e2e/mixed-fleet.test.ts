/**
 * DESIGN §16 with a real linux-arm64 worker on loopback: its updater and
 * agent are the arm64 build, run by the kernel through qemu-user
 * (test/fleet/qemu.ts), beside an x64 worker. The arm64 updater refuses an
 * x64 release, and an x64 executable whose manifest says arm64, sent to it
 * straight with curl; it takes its own target's release. Then the master:
 * one `swarm update --all` builds a release per target and each host runs
 * its own (ELF machine on disk and of the running process), the next push
 * is a delta on both, --include-self re-executes each updater on its own
 * target, and a host whose target has no release gets an error row.
 */
import { beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { release, ROOT, runCli, type Worker } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";
import { ARM64_ENV, arm64Releases, elfMachine, qemuUnavailable } from "../fleet/qemu.ts";
import type { HostResult } from "../../src/core/swarm/push.ts";
import { bundlePaths } from "../../src/lib/paths.ts";
import { cmdline, readLink } from "../../src/lib/procfs.ts";
import { writeTarball } from "../../src/lib/tarball.ts";

const why = await qemuUnavailable();
if (why) console.log(`mixed-fleet (arm64) tests skipped: ${why}`);
const it = test.skipIf(why !== null);

// qemu makes the arm64 daemons slow to start (~2 s): a longer probe deadline.
const fleet = useFleet({ workers: 2, env: { DECNET_PROBE_TIMEOUT_MS: "30000" } });
let x64: Worker;
let arm: Worker;
beforeAll(async () => {
  x64 = fleet.worker("w1");
  arm = fleet.worker("w2");
  if (why) return;
  const a = await arm64Releases();
  await fleet.startUpdater(x64);
  await fleet.startUpdater(arm, ARM64_ENV, a.bin);
}, 300_000);

/** POST with curl as the master, bypassing it: [status, body]. */
async function curlPush(w: Worker, file: string, path = "/update"): Promise<[number, any]> {
  const m = bundlePaths(join(fleet.env.DECNET_HOME!, "ca", "master"), "worker");
  const r = await runCli("curl", ["-sS", "--max-time", "120", "--cacert", m.ca, "--cert", m.crt, "--key", m.key, "-w", "\n%{http_code}",
    "-X", "POST", "-H", "content-type: application/octet-stream", "--data-binary", `@${file}`, `https://${w.address}:8766${path}`], {});
  const lines = r.stdout.trimEnd().split("\n");
  const status = Number(lines.pop());
  try {
    return [status, JSON.parse(lines.join("\n"))];
  } catch {
    return [status, lines.join("\n") || r.stderr];
  }
}

/** What a refused push must leave: the slots, the kept releases, no staging, no journal. */
const ls = (d: string) => (existsSync(d) ? readdirSync(d).sort() : []);
const state = (w: Worker) => ({
  current: existsSync(w.paths.current) ? readlinkSync(w.paths.current) : null,
  releases: ls(w.paths.releases),
  journal: existsSync(w.paths.stateJson),
  updater: ls(w.paths.updater.releases),
});

it("each updater reports its own target in /health", async () => {
  expect({ x64: (await fleet.health(x64)).target, arm: (await fleet.health(arm)).target }).toEqual({ x64: "linux-x64", arm: "linux-arm64" });
});

it("an x64 release sent to the arm64 worker with curl is 400 wrong_target, nothing changed", async () => {
  const v1 = await release("v1");
  const before = state(arm);
  const [status, body] = await curlPush(arm, v1.file);
  expect({ status, body, after: state(arm) }).toEqual({
    status: 400,
    // Refused once its manifest is read: the ~100 MB behind it is never hashed.
    body: { error: { code: "wrong_target", message: `release ${v1.id.slice(0, 12)} is built for linux-x64, this worker is linux-arm64; nothing was changed`, detail: { worker: "linux-arm64", manifest: "linux-x64" } } },
    after: before,
  });
});

it("a manifest that says linux-arm64 around an x64 executable is 400 wrong_target, for the agent's slots and the updater's own", async () => {
  const v1 = await release("v1");
  const dir = mkdtempSync(join(tmpdir(), "decnet-liar-"));
  try {
    await runCli("tar", ["xzf", v1.file, "-C", dir], {});
    const m = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
    // The id covers the files only: the lie keeps a valid manifest.
    writeFileSync(join(dir, "manifest.json"), JSON.stringify({ ...m, target: "linux-arm64" }));
    const liar = join(dir, "liar.tar.gz");
    await writeTarball(liar, dir, ["manifest.json", "decnet"]);
    const before = state(arm);
    const update = await curlPush(arm, liar);
    const self = await curlPush(arm, liar, "/update-self?confirm_self=true");
    const want = { error: { code: "wrong_target", message: `release ${v1.id.slice(0, 12)} says linux-arm64 but its decnet is a linux-x64 executable; nothing was changed`, detail: { worker: "linux-arm64", manifest: "linux-arm64", executable: "a linux-x64 executable" } } };
    expect({ update, self, after: state(arm) }).toEqual({ update: [400, want], self: [400, want], after: before });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it("the arm64 worker takes its own target's release: its agent runs the arm64 executable", async () => {
  const a = await arm64Releases();
  const [status, body] = await curlPush(arm, a.v1.file);
  const pid = fleet.pid(arm, "agent");
  const exe = join(arm.installDir, "current", "decnet");
  expect({ status, release: body.release, agent: ((await (await fleet.request(arm, "agent", "/health")).json()) as { release: string }).release, machine: elfMachine(exe), interp: readlinkSync(`/proc/${pid}/exe`) }).toEqual({
    status: 200, release: { id: a.v1.id, version: a.v1.version }, agent: a.v1.id, machine: 0xb7, interp: "/usr/bin/qemu-aarch64-static",
  });
});

/**
 * What a daemon of `w` runs: the file of its program (under qemu-user the
 * kernel's /proc/PID/exe is the interpreter, and the program is its first
 * argument), that file's ELF machine, and how it runs.
 */
function running(w: Worker, role: "agent" | "updater") {
  const pid = fleet.pid(w, role);
  const exe = readLink(`/proc/${pid}/exe`)!;
  const qemu = exe === "/usr/bin/qemu-aarch64-static";
  const program = qemu ? realpathSync(cmdline(pid)[1]!) : exe;
  return { pid, via: qemu ? "qemu-aarch64" : "native", exeMachine: elfMachine(`/proc/${pid}/exe`), program: program.slice(w.installDir.length + 1), machine: elfMachine(program) };
}

const rowOf = (r: { row(h: string): HostResult }, h: string) => {
  const x = r.row(h);
  return { agent: x.agent, self: x.self, code: x.error_code, mode: x.transfer?.mode ?? null, base: x.transfer?.base ?? null, release: x.release_id };
};

it("one swarm update --all builds a release per target; each host runs its own target's executable, and the next push is a delta on both", async () => {
  const armBefore = readlinkSync(arm.paths.current).replace("releases/", "");
  // No --artifact: the working tree is built once per target among the hosts.
  const built = await fleet.cli(["swarm", "update", "--all", "--json"], { cwd: ROOT });
  const report = JSON.parse(built.stdout) as { hosts: HostResult[]; releases: Array<{ target: string; id: string; hosts: string[] }> };
  const first = { code: built.code, row: (h: string) => report.hosts.find((x) => x.host === h) as HostResult };
  const ids = { x64: first.row("w1").release_id, arm: first.row("w2").release_id };
  const disk = { x64: elfMachine(join(x64.installDir, "current", "decnet")), arm: elfMachine(join(arm.installDir, "current", "decnet")) };
  const procs = { x64: running(x64, "agent"), arm: running(arm, "agent") };
  // The second: one --artifact per target (each its own manifest's target).
  const a = await arm64Releases();
  const v2 = await release("v2");
  const dry = JSON.parse((await fleet.cli(["swarm", "update", "--all", "--artifact", v2.file, "--artifact", a.v2.file, "--dry-run", "--json"])).stdout) as { releases: Array<{ target: string; id: string; hosts: string[] }>; missing: unknown[] };
  const second = await fleet.update(["--all", "--artifact", v2.file, "--artifact", a.v2.file]);
  expect({
    first: { code: first.code, w1: rowOf(first, "w1"), w2: rowOf(first, "w2") },
    // The final --json names the release per target and its hosts, as the dry run does.
    releases: report.releases.map((r) => [r.target, r.id, r.hosts]),
    disk,
    procs: { x64: [procs.x64.via, procs.x64.exeMachine, procs.x64.program, procs.x64.machine], arm: [procs.arm.via, procs.arm.exeMachine, procs.arm.program, procs.arm.machine] },
    dry: { releases: dry.releases.map((r) => [r.target, r.id, r.hosts]), missing: dry.missing },
    second: { code: second.code, w1: rowOf(second, "w1"), w2: rowOf(second, "w2") },
    after: { x64: running(x64, "agent").machine, arm: running(arm, "agent").machine },
  }).toEqual({
    first: {
      code: 0,
      w1: { agent: "updated", self: null, code: null, mode: "full", base: null, release: ids.x64 },
      w2: { agent: "updated", self: null, code: null, mode: "delta", base: armBefore, release: ids.arm },
    },
    releases: [["linux-x64", ids.x64, ["w1"]], ["linux-arm64", ids.arm, ["w2"]]],
    disk: { x64: 0x3e, arm: 0xb7 },
    procs: { x64: ["native", 0x3e, `releases/${ids.x64}/decnet`, 0x3e], arm: ["qemu-aarch64", 0x3e, `releases/${ids.arm}/decnet`, 0xb7] },
    dry: { releases: [["linux-x64", v2.id, ["w1"]], ["linux-arm64", a.v2.id, ["w2"]]], missing: [] },
    second: {
      code: 0,
      w1: { agent: "updated", self: null, code: null, mode: "delta", base: ids.x64, release: v2.id },
      w2: { agent: "updated", self: null, code: null, mode: "delta", base: ids.arm, release: a.v2.id },
    },
    after: { x64: 0x3e, arm: 0xb7 },
  });
}, 300_000);

it("--include-self on the mixed fleet: each updater re-executes on its own target's release, same pid", async () => {
  const a = await arm64Releases();
  const v1 = await release("v1");
  const pids = { x64: fleet.pid(x64, "updater"), arm: fleet.pid(arm, "updater") };
  const r = await fleet.update(["--all", "--include-self", "--artifact", v1.file, "--artifact", a.v1.file]);
  const h = { x64: await fleet.health(x64), arm: await fleet.health(arm) };
  const u = { x64: running(x64, "updater"), arm: running(arm, "updater") };
  expect({
    code: r.code,
    w1: rowOf(r, "w1"), w2: rowOf(r, "w2"),
    health: { x64: [h.x64.release, h.x64.pid, h.x64.target], arm: [h.arm.release, h.arm.pid, h.arm.target] },
    updaters: { x64: [u.x64.via, u.x64.program, u.x64.machine], arm: [u.arm.via, u.arm.program, u.arm.machine] },
  }).toEqual({
    code: 0,
    w1: { agent: "updated", self: "updated", code: null, mode: "delta", base: (await release("v2")).id, release: v1.id },
    w2: { agent: "updated", self: "updated", code: null, mode: "delta", base: a.v2.id, release: a.v1.id },
    health: { x64: [v1.id, pids.x64, "linux-x64"], arm: [a.v1.id, pids.arm, "linux-arm64"] },
    updaters: { x64: ["native", `updater/releases/${v1.id}/decnet`, 0x3e], arm: ["qemu-aarch64", `updater/releases/${a.v1.id}/decnet`, 0xb7] },
  });
}, 300_000);

it("a host whose target has no release gets an error row naming it; the other host is updated", async () => {
  const v2 = await release("v2");
  const armBefore = readlinkSync(arm.paths.current);
  const dry = await fleet.cli(["swarm", "update", "--all", "--artifact", v2.file, "--dry-run"]);
  const r = await fleet.update(["--all", "--artifact", v2.file]);
  const w2 = r.row("w2");
  const listed = JSON.parse((await fleet.cli(["swarm", "list", "--json"])).stdout) as Array<{ name: string; target: string | null }>;
  expect({
    registry: listed.map((h) => [h.name, h.target]),
    dry: [dry.code, dry.stdout.includes("linux-arm64: no release (an error row each; give --artifact for linux-arm64, or leave --artifact out to build it)\n    w2  ")],
    code: r.code,
    w1: rowOf(r, "w1"),
    w2: { agent: w2.agent, code: w2.error_code, detail: w2.detail, bytes: w2.bytes_sent },
    armUntouched: readlinkSync(arm.paths.current) === armBefore,
  }).toEqual({
    registry: [["w1", "linux-x64"], ["w2", "linux-arm64"]],
    dry: [0, true],
    code: 1,
    w1: { agent: "updated", self: null, code: null, mode: "delta", base: (await release("v1")).id, release: v2.id },
    w2: {
      agent: "error", code: "no_release_for_target", bytes: 0,
      detail: "w2 runs linux-arm64 and this push has no linux-arm64 release (it has linux-x64); nothing was sent — add --artifact with a linux-arm64 release (decnet release build --target linux-arm64), or leave out --artifact/--self to build one per target",
    },
    armUntouched: true,
  });
});
