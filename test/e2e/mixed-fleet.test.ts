/**
 * DESIGN §16 with a real linux-arm64 worker on loopback: its updater and
 * agent are the arm64 build, run by the kernel through qemu-user
 * (test/fleet/qemu.ts), beside an x64 worker. The arm64 updater refuses an
 * x64 release, and an x64 executable whose manifest says arm64, sent to it
 * straight with curl; it takes its own target's release.
 */
import { beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { release, runCli, type Worker } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";
import { ARM64_ENV, arm64Releases, elfMachine, qemuUnavailable } from "../fleet/qemu.ts";
import { bundlePaths } from "../../src/lib/paths.ts";
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
    body: { error: { code: "wrong_target", message: `release ${v1.id.slice(0, 12)} is built for linux-x64, this worker is linux-arm64; nothing was changed`, detail: { worker: "linux-arm64", manifest: "linux-x64", executable: "a linux-x64 executable" } } },
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
