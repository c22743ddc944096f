/**
 * The updater replacing itself: in place (same pid) from
 * <install-dir>/updater/releases, refused when the new binary fails its
 * preflight, never attempted where the agent update rolled back, and harmless
 * when repeated.
 */
import { expect, test } from "bun:test";
import { existsSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { brokenUpdaterRelease, release, until } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";
import { isAlive, readLink } from "../../src/lib/procfs.ts";

// A short confirmation window keeps the never-serving fixture quick.
const fleet = useFleet({ workers: 1, env: { DECNET_PROBE_TIMEOUT_MS: "3000", DECNET_SELF_UPDATE_CONFIRM_MS: "6000" }, start: "all" });
const updaterPid = () => fleet.pid(fleet.worker("w1"), "updater");

test("/update-self without confirm_self=true is refused with 400", async () => {
  const w = fleet.worker("w1");
  const res = await fleet.request(w, "updater", "/update-self", { method: "POST", body: "x" });
  const body = (await res.json()) as { error: { code: string; detail: Array<{ message: string }> } };
  expect({ status: res.status, code: body.error.code, why: body.error.detail[0]!.message }).toEqual({ status: 400, code: "bad_request", why: "add ?confirm_self=true: a self-update has no automatic rollback" });
});

test("--include-self puts agent and updater on the new release; the updater keeps its pid and runs from updater/releases", async () => {
  const w = fleet.worker("w1");
  const v2 = await release("v2");
  const pid = updaterPid();
  const r = await fleet.update(["--host", "w1", "--artifact", v2.file, "--include-self"]);
  const h = await fleet.health(w);
  expect({
    code: r.code,
    row: (({ agent, self }) => ({ agent, self }))(r.row()),
    health: { release: h.release, pid: h.pid, agent: h.agent.release, version: h.version },
    exe: readLink(`/proc/${pid}/exe`),
    slot: readlinkSync(w.paths.updater.current),
    agentSlot: readlinkSync(w.paths.current),
  }).toEqual({
    code: 0,
    row: { agent: "updated", self: "updated" },
    health: { release: v2.id, pid, agent: v2.id, version: v2.version },
    exe: `${w.paths.updater.releases}/${v2.id}/decnet`,
    slot: `releases/${v2.id}`,
    agentSlot: `releases/${v2.id}`,
  });
});

test("the re-executed updater holds no leaked listening socket and still serves updates", async () => {
  const w = fleet.worker("w1");
  const pid = updaterPid();
  const { listeningInodes, pidsHoldingSockets } = await import("../../src/lib/procfs.ts");
  expect(pidsHoldingSockets(listeningInodes(w.address, 8766))).toEqual([pid]);
  const r = await fleet.push(w, (await release("v1")).file);
  expect(r.status).toBe(200);
});

test("pushing the same updater release twice is harmless", async () => {
  const w = fleet.worker("w1");
  const v2 = await release("v2");
  const pid = updaterPid();
  const r = await fleet.update(["--host", "w1", "--artifact", v2.file, "--include-self"]);
  const h = await fleet.health(w);
  expect({ code: r.code, row: (({ agent, self }) => ({ agent, self }))(r.row()), pid: h.pid, release: h.release }).toEqual({
    code: 0, row: { agent: "updated", self: "unchanged" }, pid, release: v2.id,
  });
});

test("--include-self to a new release sends the updater a delta too, and it re-executes on it", async () => {
  const w = fleet.worker("w1");
  const v1 = await release("v1");
  const v2 = await release("v2"); // what the updater runs: the base of its delta
  const pid = updaterPid();
  const r = await fleet.update(["--host", "w1", "--artifact", v1.file, "--include-self"]);
  const row = r.row();
  const h = await fleet.health(w);
  expect({
    code: r.code,
    row: [row.agent, row.self],
    updaterDelta: [row.self_transfer?.mode, row.self_transfer?.base],
    small: row.bytes_sent < Bun.file(v1.file).size * 0.05,
    health: { release: h.release, pid: h.pid },
  }).toEqual({ code: 0, row: ["updated", "updated"], updaterDelta: ["delta", v2.id], small: true, health: { release: v1.id, pid } });
});

test("a self-update whose binary fails the preflight is refused; the old updater keeps serving, nothing switched", async () => {
  const w = fleet.worker("w1");
  const bad = await release("preflight-fails");
  const pid = updaterPid();
  const before = readlinkSync(w.paths.updater.current);
  const res = await fleet.request(w, "updater", "/update-self?confirm_self=true", { method: "POST", body: Bun.file(bad.file) });
  const body = (await res.json()) as { error: { code: string; message: string; detail: { stderr: string } } };
  const h = await fleet.health(w);
  expect({
    status: res.status,
    code: body.error.code,
    stderr: body.error.detail.stderr,
    serving: { pid: h.pid, alive: isAlive(pid), busy: h.busy },
    slot: readlinkSync(w.paths.updater.current),
    installed: existsSync(w.paths.updater.release(bad.id)),
  }).toEqual({
    status: 500,
    code: "install_failed",
    stderr: "fixture: updater cannot load its configuration\n",
    serving: { pid, alive: true, busy: null },
    slot: before,
    installed: false,
  });
});

test("an agent update that rolls back attempts no self-update on that host", async () => {
  const w = fleet.worker("w1");
  const bad = await release("agent-exits");
  const before = { updater: readlinkSync(w.paths.updater.current), pid: updaterPid() };
  const r = await fleet.update(["--host", "w1", "--artifact", bad.file, "--include-self"]);
  expect({ code: r.code, row: (({ agent, self }) => ({ agent, self }))(r.row()), updater: { updater: readlinkSync(w.paths.updater.current), pid: updaterPid() }, installed: existsSync(w.paths.updater.release(bad.id)) }).toEqual({
    code: 1, row: { agent: "rolled-back", self: null }, updater: before, installed: false,
  });
});

test("kill -9 between the 202 and the re-exec: restarted from updater/current, the previous updater undoes the unconfirmed switch", async () => {
  const w = fleet.worker("w1");
  const v2 = await release("v2"); // the updater runs v1 since the test before last
  const before = { release: (await fleet.health(w)).release, slot: readlinkSync(w.paths.updater.current) };
  const res = await fleet.request(w, "updater", "/update-self?confirm_self=true", { method: "POST", body: Bun.file(v2.file) });
  process.kill(updaterPid(), "SIGKILL");
  const journalled = JSON.parse(readFileSync(w.paths.updater.stateJson, "utf8")) as { phase: string; target: string };
  // As systemd would: ExecStart goes through updater/current, which never moved.
  await fleet.startUpdater(w, {}, `${w.paths.updater.current}/decnet`);
  const h = await fleet.health(w);
  expect({
    answered: res.status,
    journalled: { phase: journalled.phase, target: journalled.target },
    after: { release: h.release, journal: existsSync(w.paths.updater.stateJson), slot: readlinkSync(w.paths.updater.current), failed: (JSON.parse(readFileSync(w.paths.updater.history, "utf8")) as Record<string, { status: string }>)[v2.id]?.status },
  }).toEqual({
    answered: 202,
    journalled: { phase: "switched", target: v2.id },
    after: { release: before.release, journal: false, slot: before.slot, failed: "failed" },
  });
});

for (const mode of ["dies", "hangs"] as const) {
  test(`a new updater that ${mode === "dies" ? "dies at start" : "never serves"} is replaced by the previous one automatically; the row says rolled-back with its last words`, async () => {
    const w = fleet.worker("w1");
    const broken = await brokenUpdaterRelease(mode, join(fleet.root, `updater-${mode}.tar.gz`));
    const before = { release: (await fleet.health(w)).release, slot: readlinkSync(w.paths.updater.current) };
    const pid = updaterPid();
    const r = await fleet.update(["--host", "w1", "--artifact", broken.file, "--include-self"]);
    const h = await until(async () => { const x = await fleet.health(w); return x.self_update?.outcome === "rolled-back" ? x : null; }, "the previous updater to serve again");
    expect({
      code: r.code,
      row: [r.row().agent, r.row().self, r.row().detail.includes(`it said: fixture: this updater ${mode} at start`)],
      serving: { release: h.release, slot: readlinkSync(w.paths.updater.current), newPid: h.pid !== pid, journal: existsSync(w.paths.updater.stateJson) },
      record: [h.self_update?.target, h.self_update?.outcome],
      stray: isAlive(pid) && h.pid !== pid,
    }).toEqual({
      code: 1,
      row: ["updated", "rolled-back", true],
      serving: { release: before.release, slot: before.slot, newPid: true, journal: false },
      record: [broken.id, "rolled-back"],
      stray: false,
    });
  });
}
