/**
 * `swarm logs` and GET /logs with the spawn supervisor: the last words of an
 * agent that failed its probe, the updater's own log, -f streaming a line
 * written after the call started (escaped) until Ctrl-C with nothing left
 * open on the worker, and hostile queries refused with 400.
 */
import { beforeAll, expect, test } from "bun:test";
import { appendFileSync, readdirSync } from "node:fs";
import { release, until, type Worker } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";

const fleet = useFleet({ workers: 1, env: { DECNET_PROBE_TIMEOUT_MS: "3000" }, start: ["w1"] });
let w: Worker;
let bad: Awaited<ReturnType<typeof release>>;

beforeAll(async () => {
  w = fleet.worker("w1");
  const v1 = await release("v1");
  bad = await release("agent-exits");
  if ((await fleet.push(w, v1.file)).status !== 200) throw new Error("push v1");
  if ((await fleet.push(w, bad.file)).status !== 409) throw new Error("agent-exits should roll back");
}, 180_000);

const metric = async (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(await (await fleet.request(w, "updater", "/metrics")).text())?.[1]);
const fds = () => readdirSync(`/proc/${fleet.pid(w, "updater")}/fd`).length;

test("swarm logs shows the last words of the agent that failed its probe, and --updater the updater's account of it", async () => {
  const agent = await fleet.cli(["swarm", "logs", "--host", "w1", "-n", "50"]);
  const updater = await fleet.cli(["swarm", "logs", "--host", "w1", "--updater"]);
  const one = await fleet.cli(["swarm", "logs", "--host", "w1", "-n", "1"]);
  expect({
    agent: { code: agent.code, said: agent.stdout.split("\n").includes("fixture agent: cannot start (bad config)"), stderr: agent.stderr },
    updater: { code: updater.code, said: updater.stdout.includes(`release ${bad.id.slice(0, 12)} unhealthy; rolling back to`) },
    one: { code: one.code, lines: one.stdout.trimEnd().split("\n").length },
  }).toEqual({ agent: { code: 0, said: true, stderr: "" }, updater: { code: 0, said: true }, one: { code: 0, lines: 1 } });
});

test("-f streams a line written after the call started, escaped, and ends cleanly on Ctrl-C with no stream or fd left on the updater", async () => {
  await metric("decnet_log_streams");
  const before = fds();
  const p = Bun.spawn([fleet.bin, "swarm", "logs", "--host", "w1", "-f", "-n", "3"], { env: { ...process.env, ...fleet.env }, cwd: fleet.root, stdout: "pipe", stderr: "pipe" });
  let seen = "";
  const reading = (async () => {
    for await (const c of p.stdout) seen += new TextDecoder().decode(c);
  })();
  await until(() => seen.split("\n").length > 3, "the tail of the log");
  const open = await metric("decnet_log_streams");
  appendFileSync(w.paths.agentSpawnLog, "written after the call \x1b[2J\x1b]0;owned\x07 started\n");
  await until(() => seen.includes("written after the call \\x1b[2J\\x1b]0;owned\\x07 started\n"), "the new line, escaped");
  p.kill("SIGINT");
  const code = await p.exited;
  await reading;
  await until(async () => (await metric("decnet_log_streams")) === 0, "the stream closed on the updater");
  await until(() => fds() <= before, `the updater's fds back to ${before}`);
  expect({ open, code, stderr: await new Response(p.stderr).text(), streams: await metric("decnet_log_streams") }).toEqual({ open: 1, code: 0, stderr: "", streams: 0 });
});

test("GET /logs refuses a path, a negative, huge or junk count and unknown parameters with 400 and the error body", async () => {
  const ask = async (q: string) => {
    const res = await fleet.request(w, "updater", `/logs?${q}`);
    return { status: res.status, body: await res.json() };
  };
  const invalid = (path: string, message: string) => ({ status: 400, body: { error: { code: "bad_request", message: "invalid query", detail: [{ path, message }] } } });
  const count = "lines is a whole number from 1 to 10000";
  expect({
    path: await ask("source=../../etc/passwd"),
    negative: await ask("source=agent&lines=-1"),
    power: await ask(`source=agent&lines=${encodeURIComponent("10^9")}`),
    huge: await ask("source=agent&lines=1000000000"),
    over: await ask("source=agent&lines=10001"),
    junk: await ask("source=agent&lines=abc"),
    unknown: await ask("source=agent&file=/etc/passwd"),
    follow: await ask("source=agent&follow=yes"),
    none: await ask("lines=5"),
  }).toEqual({
    path: invalid("source", 'Invalid option: expected one of "agent"|"updater"'),
    negative: invalid("lines", count),
    power: invalid("lines", count),
    huge: invalid("lines", count),
    over: invalid("lines", "Too big: expected number to be <=10000"),
    junk: invalid("lines", count),
    unknown: invalid("", 'Unrecognized key: "file"'),
    follow: invalid("follow", 'Invalid option: expected one of "0"|"1"'),
    none: invalid("source", 'Invalid option: expected one of "agent"|"updater"'),
  });
});
