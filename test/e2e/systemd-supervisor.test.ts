/**
 * --agent-supervisor systemd, unit level: the updater's exact systemctl and
 * journalctl calls for an update and for the automatic rollback, with
 * stand-ins on PATH that run the unit's ExecStart and track its pid and
 * invocation (like the compose stand-in). The real systemd runs these in
 * real-systemd.test.ts.
 */
import { beforeAll, expect, test } from "bun:test";
import { appendFileSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { FIXTURES, release, until, type Worker } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";
import { cmdline, isAlive } from "../../src/lib/procfs.ts";

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
    health: { release: v1.id, pid: mainPid(), healthy: true, uptime_s: expect.any(Number) },
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
    health: { release: v1.id, pid: mainPid(), healthy: true, uptime_s: expect.any(Number) },
    oldGone: true,
    calls: [
      ...restart,
      "journalctl --sync",
      `journalctl --no-pager -q -o cat -n 200 _SYSTEMD_INVOCATION_ID=${invocation(badPid)}`,
      ...restart,
    ],
  });
});

test("swarm logs reads the agent unit's journal (journalctl -u): the failed invocation's last words; --updater reads updater.log", async () => {
  const before = calls().length;
  const r = await fleet.cli(["swarm", "logs", "--host", "w1", "-n", "20"]);
  const u = await fleet.cli(["swarm", "logs", "--host", "w1", "--updater"]);
  expect({
    code: r.code,
    said: r.stdout.split("\n").includes("fixture agent: cannot start (bad config)"),
    calls: calls().slice(before),
    updater: { code: u.code, said: u.stdout.includes("unhealthy; rolling back to") },
  }).toEqual({ code: 0, said: true, calls: ["journalctl -u decnet-agent.service -n 20 -o short-iso --no-pager -q"], updater: { code: 0, said: true } });
});

test("swarm logs -f follows the unit's journal (journalctl -f) and on Ctrl-C its journalctl is gone", async () => {
  const p = Bun.spawn([fleet.bin, "swarm", "logs", "--host", "w1", "-f", "-n", "1"], { env: { ...process.env, ...fleet.env }, cwd: fleet.root, stdout: "pipe", stderr: "pipe" });
  let seen = "";
  const reading = (async () => {
    for await (const c of p.stdout) seen += new TextDecoder().decode(c);
  })();
  // The stand-in follows the newest invocation's output.
  const newest = readdirSync(state).filter((f) => f.startsWith("agent-")).map((f) => join(state, f)).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0]!;
  await until(() => calls().includes("journalctl -u decnet-agent.service -n 1 -o short-iso --no-pager -q -f") && seen.length > 0, "journalctl -f to start");
  appendFileSync(newest, "a line after the call started\n");
  await until(() => seen.includes("a line after the call started\n"), "the new line");
  p.kill("SIGINT");
  const code = await p.exited;
  await reading;
  const tails = () => fleet.processes().filter((pid) => cmdline(pid).some((a) => a.startsWith(state)) && cmdline(pid)[0] === "tail");
  await until(() => tails().length === 0, "the followed journalctl to be stopped");
  expect({ code, stderr: await new Response(p.stderr).text(), tails: tails() }).toEqual({ code: 0, stderr: "", tails: [] });
});
