/**
 * /update and /rollback end to end: healthy updates, releases that fail in
 * the agent (rolled back with both transcripts), a release that fails its
 * install check (nothing switched), one operation at a time, and rollback.
 */
import { beforeAll, expect, test } from "bun:test";
import { existsSync, readdirSync, readlinkSync } from "node:fs";
import { release, until, type Worker } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";
import { allPids, cmdline, isAlive } from "../../src/lib/procfs.ts";

// A short probe deadline keeps the never-answering fixture quick.
const fleet = useFleet({ workers: 2, env: { DECNET_PROBE_TIMEOUT_MS: "3000" }, start: "all" });
let w: Worker;
beforeAll(() => {
  w = fleet.worker("w1");
});
const rel = (id: string | undefined) => (id ? `releases/${id}` : null);
const link = (p: string) => (existsSync(p) ? readlinkSync(p) : null);
const agentPid = (x: Worker) => fleet.pid(x, "agent");

async function agentHealth(x: Worker) {
  return (await (await fleet.request(x, "agent", "/health")).json()) as { release: string | null; pid: number; version: string };
}


test("rollback with no previous release is 404 no_previous", async () => {
  const res = await fleet.request(w, "updater", "/rollback", { method: "POST" });
  expect({ status: res.status, body: await res.json() }).toEqual({ status: 404, body: { error: { code: "no_previous", message: "there is no previous release to roll back to" } } });
});

test("two healthy updates in a row: slots flip, the agent restarts and reports the new release over mTLS", async () => {
  const v1 = await release("v1");
  const v2 = await release("v2");
  const r1 = await fleet.push(w, v1.file);
  const pid1 = agentPid(w);
  const h1 = await agentHealth(w);
  const r2 = await fleet.push(w, v2.file);
  const pid2 = agentPid(w);
  const h2 = await agentHealth(w);
  expect({
    first: { status: r1.status, release: r1.body.release, agent: h1.release, pid: h1.pid === pid1 },
    second: { status: r2.status, release: r2.body.release, previous: r2.body.previous, agent: h2.release, version: h2.version, pid: h2.pid === pid2 },
    slots: { current: link(w.paths.current), previous: link(w.paths.previous) },
    restarted: pid2 !== pid1 && !isAlive(pid1),
    staging: readdirSync(w.paths.releases).filter((n) => n.startsWith(".")),
  }).toEqual({
    first: { status: 200, release: { id: v1.id, version: v1.version }, agent: v1.id, pid: true },
    second: { status: 200, release: { id: v2.id, version: v2.version }, previous: v1.id, agent: v2.id, version: v2.version, pid: true },
    slots: { current: rel(v2.id), previous: rel(v1.id) },
    restarted: true,
    staging: [],
  });
});

for (const fixture of ["agent-exits", "agent-silent"] as const) {
  test(`a release whose agent ${fixture === "agent-exits" ? "exits at once" : "never answers"} is rolled back with 409 and both transcripts`, async () => {
    const v2 = await release("v2");
    const bad = await release(fixture);
    const before = { current: link(w.paths.current), previous: link(w.paths.previous) };
    const r = await fleet.push(w, bad.file);
    const h = await agentHealth(w);
    const d = r.body.error?.detail;
    expect({
      status: r.status,
      code: r.body.error?.code,
      rolled_back: d?.rolled_back,
      failed: d?.failed_release,
      newHealthy: d?.transcripts.new.healthy,
      newOutput: d?.transcripts.new.log_tail.includes("fixture agent"),
      oldHealthy: d?.transcripts.old.healthy,
      slots: { current: link(w.paths.current), previous: link(w.paths.previous) },
      agent: { release: h.release, pid: h.pid === agentPid(w) },
      kept: existsSync(w.paths.release(bad.id)),
      status_in_releases: (await fleet.releases(w)).releases.find((x) => x.id === bad.id)?.status,
      // No stray: the only agent process of this worker is the healthy one.
      agents: allPids().filter((p) => isAlive(p) && cmdline(p).includes("agent") && cmdline(p).includes(w.installDir)),
    }).toEqual({
      status: 409,
      code: "rolled_back",
      rolled_back: true,
      failed: bad.id,
      newHealthy: false,
      newOutput: true,
      oldHealthy: true,
      slots: before,
      agent: { release: v2.id, pid: true },
      kept: true,
      status_in_releases: "failed",
      agents: [h.pid],
    });
  });
}

test("a release whose `version` fails gets 500 with its stderr; nothing switched, the agent not restarted", async () => {
  const bad = await release("version-fails");
  const before = { current: link(w.paths.current), previous: link(w.paths.previous), pid: agentPid(w), releases: readdirSync(w.paths.releases).sort() };
  const r = await fleet.push(w, bad.file);
  expect({
    status: r.status,
    code: r.body.error?.code,
    stderr: r.body.error?.detail?.stderr,
    after: { current: link(w.paths.current), previous: link(w.paths.previous), pid: agentPid(w), releases: readdirSync(w.paths.releases).sort() },
  }).toEqual({ status: 500, code: "install_failed", stderr: "fixture: missing shared library libdecnet.so\n", after: before });
  expect(isAlive(before.pid)).toBe(true);
});

test("a second /update during one gets 423, and /health keeps answering well under a second", async () => {
  // The first update is one the probe waits out (3 s here): a window that does
  // not depend on how loaded the machine is.
  const slow = await release("agent-silent");
  const v1 = await release("v1");
  const first = fleet.push(w, slow.file);
  await until(async () => (await fleet.health(w)).busy === "update", "the first update to start");
  const second = await fleet.push(w, v1.file);
  const rollback = await fleet.request(w, "updater", "/rollback", { method: "POST" });
  let worst = 0;
  let done = false;
  first.finally(() => { done = true; });
  while (!done) {
    const t0 = performance.now();
    await fleet.health(w);
    await fleet.releases(w);
    worst = Math.max(worst, performance.now() - t0);
  }
  const r1 = await first;
  expect({ first: r1.status, second: second.status, code: second.body.error?.code, rollback: rollback.status, fast: worst < 1000 }).toEqual({ first: 409, second: 423, code: "busy", rollback: 423, fast: true });
});

test("/rollback swaps current and previous, restarts and probes", async () => {
  const v1 = await release("v1");
  const v2 = await release("v2");
  // Now current is v2 and previous v1 (the healthy updates above; every later push was refused or rolled back).
  expect({ current: link(w.paths.current), previous: link(w.paths.previous) }).toEqual({ current: rel(v2.id), previous: rel(v1.id) });
  const oldPid = agentPid(w);
  const res = await fleet.request(w, "updater", "/rollback", { method: "POST" });
  const body = (await res.json()) as { status: string; release: { id: string }; previous: string };
  const h = await agentHealth(w);
  expect({
    status: res.status,
    body: { status: body.status, release: body.release.id, previous: body.previous },
    slots: { current: link(w.paths.current), previous: link(w.paths.previous) },
    agent: h.release,
    restarted: h.pid !== oldPid && !isAlive(oldPid),
  }).toEqual({
    status: 200,
    body: { status: "rolled-back", release: v1.id, previous: v2.id },
    slots: { current: rel(v1.id), previous: rel(v2.id) },
    agent: v1.id,
    restarted: true,
  });
});

test("the same release again: unchanged while its agent is healthy, restarted when the agent is gone", async () => {
  const v1 = await release("v1");
  // Current is v1 (rolled back to in the previous test).
  const pid = agentPid(w);
  const same = await fleet.push(w, v1.file);
  process.kill(pid, "SIGKILL");
  await until(() => !isAlive(pid), "the agent to die");
  const again = await fleet.push(w, v1.file);
  const h = await agentHealth(w);
  expect({
    same: [same.status, same.body.status, same.body.agent_pid === pid],
    again: [again.status, again.body.status, again.body.release?.id, again.body.agent_pid === h.pid && h.pid !== pid],
    slots: { current: link(w.paths.current), previous: link(w.paths.previous) },
  }).toEqual({
    same: [200, "unchanged", true],
    again: [200, "updated", v1.id, true],
    slots: { current: rel(v1.id), previous: rel((await release("v2")).id) },
  });
});

test("a first install that fails leaves no current, no agent, keeps the release, and the next push succeeds", async () => {
  const w2 = fleet.worker("w2");
  const bad = await release("agent-exits");
  const r = await fleet.push(w2, bad.file);
  const snapshot = { current: link(w2.paths.current), kept: existsSync(w2.paths.release(bad.id)), agent: (await fleet.health(w2)).agent };
  const good = await fleet.push(w2, (await release("v1")).file);
  expect({ status: r.status, rolled_back: r.body.error?.detail?.rolled_back, snapshot, next: good.status }).toEqual({
    status: 409,
    rolled_back: false,
    snapshot: { current: null, kept: true, agent: { release: null, pid: null, healthy: false, uptime_s: null } },
    next: 200,
  });
});
