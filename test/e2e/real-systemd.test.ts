/**
 * The worker under a real systemd (systemd-nspawn, test/fleet/nspawn.ts):
 * install.sh inside the container, the compiled master on the host in the
 * container's network namespace. Install, push, rollback, renew and a CRL,
 * self-update, kill -9, quick pushes, a second install.sh, reboot — in order,
 * on one worker.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { bundlePaths } from "../../src/lib/paths.ts";
import { brokenUpdaterRelease, Fleet, release, ROOT, until, type Worker } from "../fleet/harness.ts";
import { Container, nspawnUnavailable } from "../fleet/nspawn.ts";

// A booted container and 50 MB releases; set per file (a preload only reaches the first file).
setDefaultTimeout(120_000);

const why = await nspawnUnavailable();
if (why) console.log(`real-systemd tests skipped: ${why}`);
const it = test.skipIf(why !== null);

let fleet: Fleet;
let w: Worker;
let c: Container;
const times: Record<string, number> = {};
const INST = "/root/inst";
const INSTALL = `cd ${INST} && sh install.sh --binary ./decnet --bundle ./b --updater-bundle ./b-updater`;

beforeAll(async () => {
  if (why) return;
  fleet = await Fleet.create({ workers: 1 });
  w = fleet.worker("w1");
  c = await Container.boot("w1");
  times.boot = c.boots[0]!;
  const inst = join(c.rootfs, INST.slice(1));
  cpSync(fleet.bin, join(inst, "decnet"));
  cpSync(join(ROOT, "install.sh"), join(inst, "install.sh"));
  cpSync(w.agentBundle, join(inst, "b"), { recursive: true });
  cpSync(w.updaterBundle, join(inst, "b-updater"), { recursive: true });
}, 300_000);

afterAll(async () => {
  if (why) return;
  console.log(`real-systemd: ${Object.entries(times).map(([k, v]) => `${k} ${v} ms`).join(", ")}`);
  await c?.[Symbol.asyncDispose]();
  await fleet?.[Symbol.asyncDispose]();
});

/** Times one scenario for the summary line. */
async function timed<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    times[name] = Math.round(performance.now() - t0);
  }
}

/** The master, on the host, in the container's network namespace. */
async function master(args: string[]) {
  const r = await c.net([fleet.bin, ...args], fleet.env, { cwd: fleet.root, timeoutMs: 180_000 });
  return { ...r, json: (() => { try { return JSON.parse(r.stdout); } catch { return null; } })() };
}

/** An mTLS request as the master, with curl in the container's network namespace: [status, body]. */
async function call(port: number, path: string, upload?: string): Promise<[number, any]> {
  const m = bundlePaths(join(fleet.env.DECNET_HOME!, "ca", "master"), "worker");
  const r = await c.net(["curl", "-sS", "--max-time", "60", "--cacert", m.ca, "--cert", m.crt, "--key", m.key, "-w", "\n%{http_code}",
    ...(upload ? ["-X", "POST", "--data-binary", `@${upload}`] : []), `https://${w.address}:${port}${path}`]);
  const lines = r.stdout.trimEnd().split("\n");
  const status = Number(lines.pop());
  const text = lines.join("\n");
  try {
    return [status, JSON.parse(text)];
  } catch {
    return [status, text || r.stderr];
  }
}
const health = async () => (await call(8766, "/health"))[1];

const pid = async (unit: string) => Number((await c.unit(unit)).MainPID);
const active = async () => [(await c.unit("decnet-updater")).ActiveState, (await c.unit("decnet-agent")).ActiveState];
const slot = (p: string) => readlinkSync(join(c.rootfs, "opt/decnet", p)).replace("releases/", "");

/** Waits until the updater answers with a healthy agent on `release`. */
const healthyOn = (release: string, what: string) =>
  until(async () => {
    const h = await health();
    return h?.agent?.healthy && h.agent.release === release && h.busy === null ? h : null;
  }, what, 30_000);

it("install.sh in the container: both units active, the agent healthy on the first release, units rated better than 7.9", async () => {
  const v1 = await release("v1");
  const r = await timed("install", () => c.sh(`${INSTALL} --host ${w.address}`, { timeoutMs: 120_000 }));
  const h = await healthyOn(v1.id, "the first agent to be healthy");
  const security = await c.cx(["systemd-analyze", "security", "--no-pager", "decnet-updater.service", "decnet-agent.service"]);
  const scores = [...security.stdout.matchAll(/exposure level for (\S+): ([\d.]+)/g)].map((m) => [m[1], Number(m[2])] as const);
  console.log(`real-systemd: systemd-analyze security: ${scores.map(([u, s]) => `${u} ${s}`).join(", ")}`);
  expect({
    code: r.code,
    last: r.stdout.trim().split("\n").at(-1),
    active: await active(),
    agent: { release: h.agent.release, pid: h.agent.pid, healthy: h.agent.healthy },
    updaterRelease: h.release,
    env: readFileSync(join(c.rootfs, "opt/decnet/.env.local"), "utf8"),
    history: Object.values(JSON.parse(readFileSync(join(c.rootfs, "opt/decnet/history.json"), "utf8"))).map((e: any) => e.status),
    exposureBelow79: scores.map(([u, s]) => [u, s < 7.9]),
  }).toEqual({
    code: 0,
    last: `install.sh: installed release ${v1.id.slice(0, 12)} in /opt/decnet (15 change(s))`,
    active: ["active", "active"],
    agent: { release: v1.id, pid: await pid("decnet-agent"), healthy: true },
    updaterRelease: v1.id,
    env: `DECNET_HOST=${w.address}\n`,
    history: ["good"],
    exposureBelow79: [["decnet-updater.service", true], ["decnet-agent.service", true]],
  });
});

it("a push: systemd restarts the agent (a new MainPID) on the new release", async () => {
  const v2 = await release("v2");
  const before = await pid("decnet-agent");
  const r = await timed("push", () => master(["swarm", "update", "--host", "w1", "--artifact", v2.file, "--json"]));
  const h = await health();
  expect({
    code: r.code,
    agent: r.json?.hosts[0].agent,
    newPid: (await pid("decnet-agent")) !== before,
    health: h.agent,
  }).toEqual({ code: 0, agent: "updated", newPid: true, health: { release: v2.id, pid: await pid("decnet-agent"), healthy: true, uptime_s: expect.any(Number) } });
});

it("a broken release is rolled back; the 409 quotes the agent's own journal output; warnings reach the journal as warnings", async () => {
  const v2 = await release("v2");
  const bad = await release("agent-exits");
  const [status, body] = await timed("broken push", () => call(8766, "/update", bad.file));
  const warnings = await c.cx(["journalctl", "-u", "decnet-updater", "-p", "warning", "-o", "cat", "--no-pager"]);
  const h = await health();
  expect({
    status,
    code: body.error?.code,
    rolledBack: body.error?.detail?.rolled_back,
    logTail: body.error?.detail?.transcripts?.new?.log_tail,
    health: h.agent,
    warned: warnings.stdout.includes(`warn release ${bad.id.slice(0, 12)} unhealthy; rolling back to ${v2.id.slice(0, 12)}`),
    identifier: (await c.cx(["journalctl", "-t", "decnet-agent", "-n", "1", "-o", "cat", "--no-pager"])).stdout.trim() !== "",
  }).toEqual({
    status: 409,
    code: "rolled_back",
    rolledBack: true,
    logTail: "fixture agent: cannot start (bad config)\n",
    health: { release: v2.id, pid: await pid("decnet-agent"), healthy: true, uptime_s: expect.any(Number) },
    warned: true,
    identifier: true,
  });
});

it("swarm logs reads the real journal: the broken agent's last words, the updater's own unit, and -f follows a restart until Ctrl-C, leaving no journalctl", async () => {
  const bad = await release("agent-exits");
  const agent = await timed("logs", () => master(["swarm", "logs", "--host", "w1", "-n", "200"]));
  const updater = await master(["swarm", "logs", "--host", "w1", "--updater", "-n", "200"]);
  const follow = Bun.spawn(["nsenter", "-t", String(c.leader), "-n", "--", fleet.bin, "swarm", "logs", "--host", "w1", "-f", "-n", "1"], {
    env: { ...process.env, ...fleet.env }, cwd: fleet.root, stdout: "pipe", stderr: "pipe",
  });
  let seen = "";
  const reading = (async () => {
    for await (const chunk of follow.stdout) seen += new TextDecoder().decode(chunk);
  })();
  await until(() => seen.length > 0, "the followed journal's first line");
  // A line the agent writes after the call started: a restarted agent says hello.
  await c.cx(["systemctl", "restart", "decnet-agent"]);
  const restarted = await pid("decnet-agent");
  await until(() => seen.includes(`pid ${restarted} on`), "the restarted agent's first line");
  follow.kill("SIGINT");
  const code = await follow.exited;
  await reading;
  const journalctls = async () => Number((await c.cx(["sh", "-c", "cat /proc/[0-9]*/comm 2>/dev/null | grep -cx journalctl || true"])).stdout.trim());
  await until(async () => (await journalctls()) === 0, "the updater's journalctl -f to be stopped");
  const lines = agent.stdout.trimEnd().split("\n");
  expect({
    code: agent.code,
    said: lines.some((l) => l.endsWith("fixture agent: cannot start (bad config)")),
    notShortIso: lines.filter((l) => !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:?\d\d /.test(l)),
    updater: [updater.code, updater.stdout.includes(`release ${bad.id.slice(0, 12)} unhealthy; rolling back to`)],
    follow: { code, stderr: await new Response(follow.stderr).text() },
  }).toEqual({ code: 0, said: true, notShortIso: [], updater: [0, true], follow: { code: 0, stderr: "" } });
  await healthyOn((await release("v2")).id, "the restarted agent to be healthy");
});

it("swarm rollback goes back to the first release under systemd", async () => {
  const v1 = await release("v1");
  const v2 = await release("v2");
  const r = await timed("rollback", () => master(["swarm", "rollback", "--host", "w1"]));
  expect({ code: r.code, stderr: r.stderr, health: (await health()).agent, slots: [slot("current"), slot("previous")] }).toEqual({
    code: 0, stderr: "", health: { release: v1.id, pid: await pid("decnet-agent"), healthy: true, uptime_s: expect.any(Number) }, slots: [v1.id, v2.id],
  });
});

/** The serial of the certificate a daemon serves, as openssl s_client sees it from the master's side. */
async function served(port: number): Promise<string> {
  const m = bundlePaths(join(fleet.env.DECNET_HOME!, "ca", "master"), "worker");
  const r = await c.net(["openssl", "s_client", "-connect", `${w.address}:${port}`, "-cert", m.crt, "-key", m.key]);
  const pem = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/.exec(r.stdout)?.[0];
  return pem ? new X509Certificate(pem).serialNumber.toLowerCase() : "no certificate";
}

it("swarm renew and crl push under systemd (home read-only but the updater's bundle dirs): both daemons serve new certificates and a CRL, neither restarts", async () => {
  const pids = [await pid("decnet-updater"), await pid("decnet-agent")];
  const r = await timed("renew", () => master(["swarm", "renew", "--host", "w1", "--json"]));
  const crl = await master(["swarm", "crl", "push", "--host", "w1", "--json"]);
  const row = r.json?.[0];
  expect({
    code: r.code,
    outcome: row?.outcome,
    agent: row?.agent,
    served: { agent: await served(8765), updater: await served(8766) },
    crl: [crl.code, crl.json?.rows[0].outcome],
    pids: [await pid("decnet-updater"), await pid("decnet-agent")],
    crlOnDisk: ["agent", "updater"].map((d) => existsSync(join(c.rootfs, "root/.decnet", d, "crl.pem"))),
    health: (await health()).agent.healthy,
  }).toEqual({
    code: 0,
    outcome: "renewed",
    agent: "switched",
    served: row?.serials,
    crl: [0, "updated"],
    pids,
    crlOnDisk: [true, true],
    health: true,
  });
});

it("--include-self: the updater re-executes in place (same MainPID) on the new release", async () => {
  const v3 = await release("v3");
  const before = await pid("decnet-updater");
  const r = await timed("include-self", () => master(["swarm", "update", "--host", "w1", "--artifact", v3.file, "--include-self", "--json"]));
  const h = await health();
  expect({
    code: r.code,
    row: [r.json?.hosts[0].agent, r.json?.hosts[0].self],
    updater: [await pid("decnet-updater"), h.release],
    agent: h.agent.release,
    active: await active(),
  }).toEqual({ code: 0, row: ["updated", "updated"], updater: [before, v3.id], agent: v3.id, active: ["active", "active"] });
});

it("a self-update whose new updater dies at start: systemd runs the previous one again, which undoes the switch; the row says rolled-back", async () => {
  const v3 = await release("v3");
  const dies = await brokenUpdaterRelease("dies", join(fleet.root, "updater-dies.tar.gz"));
  const restarts = Number((await c.unit("decnet-updater")).NRestarts);
  const r = await timed("crashing self-update", () => master(["swarm", "update", "--host", "w1", "--artifact", dies.file, "--include-self", "--json"]));
  const h = await health();
  const row = r.json?.hosts[0];
  // Put the agent back on v3 for the scenarios after this one.
  expect((await master(["swarm", "update", "--host", "w1", "--artifact", v3.file])).code).toBe(0);
  expect({
    code: r.code,
    row: [row?.agent, row?.self, String(row?.detail).includes("fixture: this updater dies at start")],
    updater: [h.release, h.self_update?.outcome, slot("updater/current")],
    restarted: Number((await c.unit("decnet-updater")).NRestarts) > restarts,
    active: await active(),
  }).toEqual({ code: 1, row: ["updated", "rolled-back", true], updater: [v3.id, "rolled-back", v3.id], restarted: true, active: ["active", "active"] });
});

it("kill -9 of the updater mid-probe: systemd restarts it, it undoes the switch and the agent is back on the last good release", async () => {
  const v3 = await release("v3");
  const silent = await release("agent-silent");
  const before = await pid("decnet-updater");
  await timed("kill -9 recovery", async () => {
    const push = call(8766, "/update", silent.file);
    // The probe of the silent agent lasts 10 s: kill the updater inside it.
    await until(() => existsSync(join(c.rootfs, "opt/decnet/state.json")) && JSON.parse(readFileSync(join(c.rootfs, "opt/decnet/state.json"), "utf8")).phase === "probing", "the probe to begin", 30_000);
    await c.sh(`kill -9 ${before}`);
    await push;
    await until(async () => (await pid("decnet-updater")) > 0 && (await pid("decnet-updater")) !== before, "systemd to restart the updater", 30_000);
    await healthyOn(v3.id, "the updater to recover the agent");
  });
  const h = await health();
  expect({
    restarted: (await pid("decnet-updater")) !== before,
    nRestarts: Number((await c.unit("decnet-updater")).NRestarts) >= 1,
    slots: slot("current"),
    health: h.agent,
    journal: existsSync(join(c.rootfs, "opt/decnet/state.json")),
    silentStatus: (await master(["swarm", "releases", "--host", "w1", "--json"])).json?.releases.find((x: any) => x.id === silent.id)?.status,
  }).toEqual({ restarted: true, nRestarts: true, slots: v3.id, health: { release: v3.id, pid: await pid("decnet-agent"), healthy: true, uptime_s: expect.any(Number) }, journal: false, silentStatus: "failed" });
});

it("an agent slow to stop: systemd kills it after the unit's TimeoutStopSec, inside the updater's wait, and the push succeeds", async () => {
  const v2 = await release("v2");
  // A stop that hangs until systemd gives up on it (ExecStop runs before SIGTERM, bounded by TimeoutStopSec).
  const dropIn = join(c.rootfs, "etc/systemd/system/decnet-agent.service.d");
  mkdirSync(dropIn, { recursive: true });
  writeFileSync(join(dropIn, "slow-stop.conf"), "[Service]\nExecStop=/bin/sleep 60\n");
  await c.cx(["systemctl", "daemon-reload"]);
  const t0 = performance.now();
  const r = await master(["swarm", "update", "--host", "w1", "--artifact", v2.file, "--json"]);
  const ms = (times["slow stop push"] = Math.round(performance.now() - t0));
  rmSync(dropIn, { recursive: true });
  await c.cx(["systemctl", "daemon-reload"]);
  expect({
    code: r.code,
    agent: r.json?.hosts[0].agent,
    waitedForSystemd: ms > 10_000,
    stopTimeout: (await c.unit("decnet-agent", ["TimeoutStopUSec"])).TimeoutStopUSec,
    health: (await health()).agent,
  }).toEqual({ code: 0, agent: "updated", waitedForSystemd: true, stopTimeout: "10s", health: { release: v2.id, pid: await pid("decnet-agent"), healthy: true, uptime_s: expect.any(Number) } });
});

it("quick pushes against systemd's start rate limit: a unit that hit it is started again, and 8 pushes in a row are all healthy", async () => {
  const v1 = await release("v1");
  const v2 = await release("v2");
  // An older install.sh's unit: systemd's default limit of 5 starts, over 60 s
  // instead of 10 so that it bites at this machine's push rate (~2 s a push).
  const dropIn = join(c.rootfs, "etc/systemd/system/decnet-agent.service.d");
  mkdirSync(dropIn, { recursive: true });
  writeFileSync(join(dropIn, "old-limit.conf"), "[Unit]\nStartLimitIntervalSec=60\nStartLimitBurst=5\n");
  await c.cx(["systemctl", "daemon-reload"]);
  // What six quick pushes did before the fix: restarts until systemd refuses one.
  let refused = 0;
  for (let i = 0; i < 8 && !refused; i++) if ((await c.cx(["systemctl", "restart", "decnet-agent"])).code !== 0) refused = i + 1;
  const hit = await c.unit("decnet-agent", ["ActiveState", "Result"]);
  const results: string[] = [];
  const t0 = performance.now();
  for (let i = 0; i < 8; i++) {
    const r = await master(["swarm", "update", "--host", "w1", "--artifact", (i % 2 ? v2 : v1).file, "--json"]);
    results.push(r.json?.hosts[0].agent ?? r.stderr);
  }
  times["8 pushes"] = Math.round(performance.now() - t0);
  const h = await health();
  const during = await c.unit("decnet-agent", ["ActiveState", "Result"]);
  rmSync(dropIn, { recursive: true });
  await c.cx(["systemctl", "daemon-reload"]);
  expect({
    refused: refused > 0,
    hit,
    results,
    health: h.agent,
    during,
    installed: (await c.unit("decnet-agent", ["StartLimitIntervalUSec"])).StartLimitIntervalUSec,
  }).toEqual({
    refused: true,
    hit: { ActiveState: "failed", Result: "start-limit-hit" },
    results: Array(8).fill("updated"),
    health: { release: v2.id, pid: await pid("decnet-agent"), healthy: true, uptime_s: expect.any(Number) },
    during: { ActiveState: "active", Result: "success" },
    installed: "0",
  });
});

it("install.sh again after pushes: the pushed release stays, nothing changes, nothing restarts", async () => {
  const v1 = await release("v1");
  const pids = [await pid("decnet-updater"), await pid("decnet-agent")];
  const slots = [slot("current"), slot("previous"), readlinkSync(join(c.rootfs, "opt/decnet/updater/current"))];
  const r = await timed("install again", () => c.sh(`${INSTALL} --host ${w.address}`, { timeoutMs: 120_000 }));
  expect({
    code: r.code,
    out: r.stdout.trim().split("\n"),
    pids: [await pid("decnet-updater"), await pid("decnet-agent")],
    slots: [slot("current"), slot("previous"), readlinkSync(join(c.rootfs, "opt/decnet/updater/current"))],
  }).toEqual({
    code: 0,
    out: [
      `install.sh: agent: keeps current -> releases/${slots[0]} (${(await release("v2")).version}); --force installs this binary instead`,
      `install.sh: updater: keeps current -> ${slots[2]} (${(await release("v3")).version}); --force installs this binary instead`,
      // Renewed since the first install: the bundles given again are the superseded ones.
      "install.sh: agent: keeps the certificate `swarm renew` gave it (this bundle's is the one it replaced)",
      "install.sh: updater: keeps the certificate `swarm renew` gave it (this bundle's is the one it replaced)",
      `install.sh: kept release ${slots[0]!.slice(0, 12)} in /opt/decnet, not this binary's ${v1.id.slice(0, 12)} (--force installs it) (0 change(s))`,
    ],
    pids,
    slots,
  });
});

it("reboot: both units come back, the agent on the last good release", async () => {
  const v2 = await release("v2");
  const ms = await c.reboot();
  times.reboot = ms;
  const h = await healthyOn(v2.id, "the agent after the reboot");
  expect({ active: await active(), agent: h.agent, updater: h.release }).toEqual({
    active: ["active", "active"],
    agent: { release: v2.id, pid: await pid("decnet-agent"), healthy: true, uptime_s: expect.any(Number) },
    updater: (await release("v3")).id,
  });
});
