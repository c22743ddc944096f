/**
 * --agent-supervisor systemd, unit level: the updater's exact systemctl and
 * journalctl calls for an update and for the automatic rollback, with
 * stand-ins on PATH that run the unit's ExecStart and track its pid and
 * invocation (like the compose stand-in). The real systemd runs these in
 * real-systemd.test.ts.
 */
import { beforeAll, expect, test } from "bun:test";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { FIXTURES, release, type Worker } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";
import { isAlive } from "../../src/lib/procfs.ts";

const fleet = useFleet({ workers: 1, env: { DECNET_PROBE_TIMEOUT_MS: "3000" } });
let w: Worker;
let state: string;
beforeAll(async () => {
  w = fleet.worker("w1");
  state = join(fleet.root, "systemd");
  mkdirSync(state);
  const env = {
    PATH: `${join(FIXTURES, "../systemctl")}:${process.env.PATH}`,
    SYSTEMCTL_STANDIN_DIR: state,
    // What install.sh writes as the unit's ExecStart (with this worker's address).
    SYSTEMCTL_STANDIN_EXEC: `${w.paths.current}/decnet agent --host ${w.address} --agent-dir ${w.agentBundle} --install-dir ${w.installDir}`,
  };
  const r = await fleet.cli([...fleet.updaterArgs(w, { agentSupervisor: "systemd" }), "--daemon"], { env });
  expect(r.code).toBe(0);
}, 180_000);

const mainPid = () => Number(readFileSync(join(state, "pid"), "utf8"));
const calls = () => readFileSync(join(state, "calls.log"), "utf8").trim().split("\n");
const invocation = (pid: number) => pid.toString(16).padStart(32, "0");
/** What one restart asks systemctl: clear a failed state, the stop timeout, restart, the new process. */
const restart = ["reset-failed decnet-agent.service", "show -p TimeoutStopUSec decnet-agent.service", "restart decnet-agent.service", "show -p ExecMainPID -p InvocationID decnet-agent.service"];

test("an update restarts the agent through systemctl and probes the MainPID it reports", async () => {
  const v1 = await release("v1");
  const r = await fleet.push(w, v1.file);
  const h = await fleet.health(w);
  expect({ status: r.status, agentPid: r.body.agent_pid === mainPid(), health: h.agent, calls: calls() }).toEqual({
    status: 200,
    agentPid: true,
    health: { release: v1.id, pid: mainPid(), healthy: true },
    calls: restart,
  });
});

test("an unhealthy release is rolled back through systemctl too, with the failed invocation's journal in the 409", async () => {
  const v1 = await release("v1");
  const bad = await release("agent-exits");
  const before = mainPid();
  const r = await fleet.push(w, bad.file);
  const h = await fleet.health(w);
  const badPid = r.body.error?.detail?.transcripts?.new?.pid ?? Number(/agent pid (\d+) exited/.exec(JSON.stringify(r.body))?.[1]);
  expect({
    status: r.status,
    rolledBack: r.body.error?.detail?.rolled_back,
    logTail: r.body.error?.detail?.transcripts?.new?.log_tail,
    health: h.agent,
    oldGone: !isAlive(before),
    calls: calls().slice(restart.length),
  }).toEqual({
    status: 409,
    rolledBack: true,
    logTail: "fixture agent: cannot start (bad config)\n",
    health: { release: v1.id, pid: mainPid(), healthy: true },
    oldGone: true,
    calls: [
      ...restart,
      "journalctl --sync",
      `journalctl --no-pager -q -o cat -n 200 _SYSTEMD_INVOCATION_ID=${invocation(badPid)}`,
      ...restart,
    ],
  });
});
