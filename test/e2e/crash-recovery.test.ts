/**
 * kill -9 of the updater mid-upload, mid-probe, and mid-delta after it took
 * its spare: after a restart the worker is on the old release with a healthy
 * agent, no staging, no stray agent, and takes the next push.
 */
import { beforeAll, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { deltaBody, planDelta } from "../fixtures/delta1.ts";
import { BlocksResponse } from "../../src/protocol/delta.ts";
import { Manifest } from "../../src/protocol/manifest.ts";
import { release, until, type Worker } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";
import { allPids, cmdline, isAlive } from "../../src/lib/procfs.ts";

const fleet = useFleet({ workers: 2, env: { DECNET_PROBE_TIMEOUT_MS: "20000" }, start: ["w1"] });
let w: Worker;
beforeAll(async () => {
  w = fleet.worker("w1");
  expect((await fleet.push(w, (await release("v1")).file)).status).toBe(200);
}, 180_000);

const updaterPid = () => fleet.pid(w, "updater");
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
    pidFileIsTheAgent: agents()[0] === fleet.pid(w, "agent"),
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
  const agentBefore = fleet.pid(w, "agent");
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
  expect(fleet.pid(w, "agent")).toBe(agentBefore);
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

test("kill -9 mid-probe of an agent that exec'd into another program: after restart that exact process is gone too", async () => {
  const execs = await release("agent-execs");
  const push = fleet.push(w, execs.file).catch(() => null);
  await until(() => existsSync(w.paths.stateJson) && JSON.parse(readFileSync(w.paths.stateJson, "utf8")).phase === "probing", "the probe to start");
  const journal = JSON.parse(readFileSync(w.paths.stateJson, "utf8")) as { pid: number; start: number };
  // Its argv no longer says `decnet agent`: only its pid and start time name it.
  await until(() => cmdline(journal.pid)[0] === "sleep", "the agent to exec into sleep");
  process.kill(updaterPid(), "SIGKILL");
  await push;
  await fleet.startUpdater(w);
  await until(async () => (await fleet.health(w)).busy === null, "recovery to finish");
  expect(await state()).toEqual(await expected());
  expect({ recorded: typeof journal.start, strayAlive: isAlive(journal.pid) }).toEqual({ recorded: "number", strayAlive: false });
});

test("kill -9 mid-delta, after the spare was taken into staging: after restart, old release, no staging, and the next push lands", async () => {
  const w2 = fleet.worker("w2");
  await fleet.startUpdater(w2, { DECNET_KEEP_RELEASES: "1" });
  const [v1, v2, v3, v4] = [await release("v1"), await release("v2"), await release("v3"), await release("v4")];
  for (const r of [v1, v2, v3]) expect((await fleet.push(w2, r.file)).status).toBe(200);
  const hadSpare = existsSync(w2.paths.spare); // v1, pruned by v3

  // A real delta from v3 to v4, sent up to half-way, then stalled: the header
  // is in, the prefix has been laid into the spare's file, the rest never comes.
  const manifest = Manifest.parse(JSON.parse(await new Response(Bun.spawn(["tar", "xzOf", v4.file, "manifest.json"], { stdout: "pipe" }).stdout).text()));
  const base = BlocksResponse.parse(await (await fleet.request(w2, "updater", `/blocks?release=${v3.id}&slot=agent`)).json());
  const body = await deltaBody((await planDelta(v4.file, manifest, base))!);
  let sent = false;
  const stream = new ReadableStream<Uint8Array>({
    async pull(c) {
      if (sent) return void (await Bun.sleep(200));
      c.enqueue(body.subarray(0, body.byteLength >> 1));
      sent = true;
    },
  });
  const upload = fleet.request(w2, "updater", `/update?delta=${v3.id}`, { method: "POST", body: stream, duplex: "half" } as RequestInit).catch(() => null);
  await until(() => !existsSync(w2.paths.spare) && readdirSync(w2.paths.releases).some((n) => n.startsWith(".staging")), "the spare to be taken into staging");
  process.kill(fleet.pid(w2, "updater"), "SIGKILL");
  await upload;
  await fleet.startUpdater(w2, { DECNET_KEEP_RELEASES: "1" });
  await until(async () => (await fleet.health(w2)).busy === null, "recovery to finish");
  const h = await fleet.health(w2);
  const after = {
    current: readlinkSync(w2.paths.current),
    previous: readlinkSync(w2.paths.previous),
    left: readdirSync(w2.paths.releases).filter((n) => n.startsWith(".")),
    journal: existsSync(w2.paths.stateJson),
    agent: [h.agent.release === v3.id, h.agent.healthy],
  };
  const next = await fleet.cli(["swarm", "update", "--host", "w2", "--artifact", v4.file, "--json"]);
  expect({ hadSpare, after, next: [next.code, (await fleet.health(w2)).agent.release === v4.id] }).toEqual({
    hadSpare: true,
    after: { current: `releases/${v3.id}`, previous: `releases/${v2.id}`, left: [], journal: false, agent: [true, true] },
    next: [0, true],
  });
});
