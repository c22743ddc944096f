/**
 * kill -9 of the updater mid-upload and mid-probe: after a restart the worker
 * is on the old release with a healthy agent, no staging, no stray agent.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { Fleet, release, until, type Worker } from "../fleet/harness.ts";
import { allPids, cmdline, isAlive } from "../../src/lib/procfs.ts";

// Real daemons and 50 MB releases; set per file (a preload only reaches the first file).
setDefaultTimeout(90_000);

let fleet: Fleet;
let w: Worker;

beforeAll(async () => {
  fleet = await Fleet.create({ workers: 1, env: { DECNET_PROBE_TIMEOUT_MS: "20000" } });
  w = fleet.worker("w1");
  await fleet.startUpdater(w);
  expect((await fleet.push(w, (await release("v1")).file)).status).toBe(200);
}, 180_000);
afterAll(() => fleet[Symbol.asyncDispose]());

const updaterPid = () => Number(readFileSync(w.paths.updater.pid, "utf8"));
/** Every `agent` process of this worker, by argv (the fixture runs under /bin/sh). */
const agents = () => allPids().filter((p) => isAlive(p) && cmdline(p).includes("agent") && cmdline(p).includes(w.installDir));

async function state() {
  const v1 = await release("v1");
  const h = await fleet.health(w);
  return {
    current: readlinkSync(w.paths.current),
    previous: existsSync(w.paths.previous) ? readlinkSync(w.paths.previous) : null,
    staging: readdirSync(w.paths.releases).filter((n) => n.startsWith(".staging")),
    journal: existsSync(w.paths.stateJson),
    agent: { release: h.agent.release === v1.id, healthy: h.agent.healthy },
    agents: agents().length,
    pidFileIsTheAgent: agents()[0] === Number(readFileSync(w.paths.agentPid, "utf8")),
  };
}

const expected = async () => ({
  current: `releases/${(await release("v1")).id}`,
  previous: null,
  staging: [],
  journal: false,
  agent: { release: true, healthy: true },
  agents: 1,
  pidFileIsTheAgent: true,
});

test("kill -9 mid-upload: after restart, old release, same healthy agent, no staging", async () => {
  const agentBefore = Number(readFileSync(w.paths.agentPid, "utf8"));
  const full = await Bun.file((await release("v2")).file).bytes();
  let sent = 0;
  // Send a few MB, then trickle, so the kill lands mid-upload.
  const body = new ReadableStream<Uint8Array>({
    async pull(c) {
      if (sent >= 8 * 1024 * 1024) return void (await Bun.sleep(200));
      c.enqueue(full.subarray(sent, sent + 512 * 1024));
      sent += 512 * 1024;
    },
  });
  const upload = fleet.request(w, "updater", "/update", { method: "POST", body, duplex: "half" } as RequestInit).catch(() => null);
  await until(() => readdirSync(w.paths.releases).some((n) => n.startsWith(".staging")) && existsSync(w.paths.stateJson), "staging to appear");
  process.kill(updaterPid(), "SIGKILL");
  await upload;
  await fleet.startUpdater(w);
  await until(async () => (await fleet.health(w)).busy === null, "recovery to finish");
  expect(await state()).toEqual(await expected());
  expect(Number(readFileSync(w.paths.agentPid, "utf8"))).toBe(agentBefore);
});

test("kill -9 mid-probe: after restart, old release, a healthy agent, and the unconfirmed agent gone", async () => {
  const silent = await release("agent-silent");
  const push = fleet.push(w, silent.file).catch(() => null);
  await until(() => existsSync(w.paths.stateJson) && JSON.parse(readFileSync(w.paths.stateJson, "utf8")).phase === "probing", "the probe to start");
  const journal = JSON.parse(readFileSync(w.paths.stateJson, "utf8")) as { pid: number };
  expect(isAlive(journal.pid)).toBe(true);
  process.kill(updaterPid(), "SIGKILL");
  await push;
  await fleet.startUpdater(w);
  await until(async () => (await fleet.health(w)).busy === null, "recovery to finish");
  expect(await state()).toEqual(await expected());
  expect({ strayAlive: isAlive(journal.pid), failedKept: existsSync(w.paths.release(silent.id)) }).toEqual({ strayAlive: false, failedKept: true });
});
