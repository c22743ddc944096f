/**
 * `swarm status` over three real workers: two running (one of them drifted
 * from what the registry last pushed), one whose updater port takes the
 * connection and never answers — it costs one short timeout, not a queue.
 * JSON with every field, exit 1; the table coloured on a pty, plain without.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { binaries, release, until, type Worker } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";
import type { StatusReport } from "../../src/core/swarm/status.ts";

const fleet = useFleet({ workers: 3, start: ["w1", "w2"] });
let hole: { stop(force?: boolean): void } | undefined;
let w3: Worker;

beforeAll(async () => {
  const v1 = await release("v1");
  const r = await fleet.update(["--host", "w1,w2", "--artifact", v1.file]);
  if (r.code !== 0) throw new Error(`push: ${r.stderr}`);
  // w2 then runs v2, pushed past the registry: drift.
  const v2 = await release("v2");
  if ((await fleet.push(fleet.worker("w2"), v2.file)).status !== 200) throw new Error("push v2 to w2");
  // w3's updater port accepts and says nothing: the worst kind of down.
  w3 = fleet.worker("w3");
  hole = Bun.listen({ hostname: w3.address, port: 8766, socket: { data() {} } });
}, 180_000);
afterAll(() => hole?.stop(true));

test("status --all --json: every field for the live hosts, the silent one unreachable after one timeout, the whole call in about that timeout, exit 1", async () => {
  const v1 = await release("v1");
  const v2 = await release("v2");
  const t0 = performance.now();
  const r = await fleet.cli(["swarm", "status", "--all", "--json"]);
  const wall = performance.now() - t0;
  const rep = JSON.parse(r.stdout) as StatusReport;
  const [a, b, c] = rep.hosts;
  const live = (row: typeof a, pushed: string, runs: string, w: Worker) => ({
    ...row,
    updater: { ...row!.updater, pid: row!.updater!.pid === fleet.pid(w, "updater") },
    agent: { ...row!.agent, pid: row!.agent!.pid === fleet.pid(w, "agent"), uptime_s: typeof row!.agent!.uptime_s === "number" && row!.agent!.uptime_s < 600 },
    certificates: { updater: row!.certificates!.updater!.days_left, agent: row!.certificates!.agent!.days_left, dates: typeof row!.certificates!.updater!.not_after },
    disk: row!.disk!.free_bytes > 0 && row!.disk!.size_bytes >= row!.disk!.free_bytes,
    last_push: row!.last_push!.result,
    ms: row!.ms < 3000,
    _: { pushed, runs },
  });
  expect({
    code: r.code,
    timeout: rep.timeout_ms,
    // Concurrent: one timeout for the silent host, the live ones answering meanwhile.
    quick: rep.duration_ms >= 3000 && rep.duration_ms < 4500 && wall < 6000,
    w1: live(a, v1.id, v1.id, fleet.worker("w1")),
    w2: live(b, v1.id, v2.id, fleet.worker("w2")),
    w3: { ...c, ms: c!.ms >= 3000 && c!.ms < 4500, error: { ...c!.error, message: c!.error!.message } },
  }).toEqual({
    code: 1,
    timeout: 3000,
    quick: true,
    w1: {
      host: "w1", address: fleet.worker("w1").address, reachable: true, error: null,
      updater: { version: (await binaries()).version, release: null, pid: true },
      agent: { healthy: true, release: v1.id, pid: true, uptime_s: true },
      last_release: v1.id, drift: false, busy: null,
      certificates: { updater: 89, agent: 89, dates: "string" },
      disk: true, last_push: "update: updated", healthy: true, ms: true,
      _: { pushed: v1.id, runs: v1.id },
    },
    w2: {
      host: "w2", address: fleet.worker("w2").address, reachable: true, error: null,
      updater: { version: (await binaries()).version, release: null, pid: true },
      agent: { healthy: true, release: v2.id, pid: true, uptime_s: true },
      last_release: v1.id, drift: true, busy: null,
      certificates: { updater: 89, agent: 89, dates: "string" },
      disk: true, last_push: "update: updated", healthy: true, ms: true,
      _: { pushed: v1.id, runs: v2.id },
    },
    w3: {
      host: "w3", address: w3.address, reachable: false,
      error: { code: "timeout", message: `no answer from updater at ${w3.address}:8766 within 3 s`, hint: expect.stringContaining("DECNET_REQUEST_TIMEOUT_MS") },
      updater: null, agent: null, last_release: null, drift: null, busy: null, certificates: null, disk: null, last_push: null, healthy: false, ms: true,
    },
  });
});

test("the table is coloured on a terminal (unreachable red, drift yellow, healthy green) and plain without one", async () => {
  const env = Object.entries({ ...process.env, ...fleet.env }).map(([k, v]) => `${k}='${String(v).replace(/'/g, "'\\''")}'`).join(" ");
  const cmd = `env ${env} ${fleet.bin} swarm status --all --timeout-ms 500`;
  const pty = Bun.spawnSync(["script", "-qec", cmd, "/dev/null"], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const onPty = pty.stdout.toString();
  const plain = await fleet.cli(["swarm", "status", "--all", "--timeout-ms", "500"]);
  const lines = plain.stdout.split("\n");
  expect({
    ptyExit: pty.exitCode,
    red: onPty.includes("\x1b[31munreachable\x1b[0m"),
    yellow: /\x1b\[33myes \(pushed [0-9a-f]{12}\)\x1b\[0m/.test(onPty),
    green: onPty.includes("\x1b[32mhealthy\x1b[0m"),
    plain: { code: plain.code, escapes: plain.stdout.includes("\x1b"), header: lines[0]!.split(/\s{2,}/), w3: lines.find((l) => l.startsWith("w3 "))?.includes("unreachable"), why: plain.stdout.includes(`w3: no answer from updater at ${w3.address}:8766 within 1 s`) },
  }).toEqual({
    ptyExit: 1,
    red: true,
    yellow: true,
    green: true,
    plain: { code: 1, escapes: false, header: ["HOST", "UPDATER", "AGENT", "AGENT RELEASE", "UPTIME", "DRIFT", "BUSY", "CERTS (UPDATER/AGENT)", "DISK FREE", "ANSWERED IN", "LAST PUSH"], w3: true, why: true },
  });
});

test("--watch --json prints one report per round until Ctrl-C, then exits with the last round's code", async () => {
  const p = Bun.spawn([fleet.bin, "swarm", "status", "--watch", "--json", "--timeout-ms", "300"], { env: { ...process.env, ...fleet.env }, cwd: fleet.root, stdout: "pipe", stderr: "pipe" });
  let seen = "";
  const reading = (async () => {
    for await (const c of p.stdout) seen += new TextDecoder().decode(c);
  })();
  await until(() => seen.split("\n").filter(Boolean).length >= 2, "two rounds", 15_000);
  p.kill("SIGINT");
  const code = await p.exited;
  await reading;
  const rounds = seen.trim().split("\n").map((l) => JSON.parse(l) as StatusReport);
  expect({
    code,
    stderr: await new Response(p.stderr).text(),
    rounds: rounds.length >= 2,
    apart: Date.parse(rounds[1]!.at) - Date.parse(rounds[0]!.at) >= 2000,
    hosts: rounds.map((r) => r.hosts.map((h) => [h.host, h.reachable])),
  }).toEqual({ code: 1, stderr: "", rounds: true, apart: true, hosts: rounds.map(() => [["w1", true], ["w2", true], ["w3", false]]) });
});
