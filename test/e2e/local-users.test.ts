/**
 * Another local user on a worker (uid 65534 through setpriv): an IPv6-only
 * listener on the agent's port does not block a push, a squatter racing
 * every restart window (the agent's stop/start, the updater's own re-exec)
 * never gets a decnet port, and a process of that user is never signalled
 * by the root updater — not even with a recycled pid or a decoy argv.
 */
import { beforeAll, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { signalProc } from "../../src/lib/signal.ts";
import { isAlive, startTime } from "../../src/lib/procfs.ts";
import { release, until, type Worker } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";

const fleet = useFleet({ workers: 2, start: "all", env: { DECNET_PROBE_TIMEOUT_MS: "5000" } });
const NOBODY = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"];
const PYTHON = "/usr/bin/python3";
let w: Worker;
/** A world-readable dir for what the other user runs (the checkout may be 0700). */
let scripts: string;
beforeAll(async () => {
  w = fleet.worker("w1");
  scripts = mkdtempSync(join(tmpdir(), "decnet-local-user-"));
  chmodSync(scripts, 0o755);
  for (const x of fleet.workers) expect((await fleet.push(x, (await release("v1")).file)).status).toBe(200);
});

/** Runs `code` (Python) as uid 65534; its stdout is collected. */
function asNobody(name: string, code: string) {
  const file = join(scripts, `${name}.py`);
  writeFileSync(file, code, { mode: 0o644 });
  const p = Bun.spawn([...NOBODY, PYTHON, "-u", file], { stdout: "pipe", stderr: "pipe" });
  const out = new Response(p.stdout).text();
  return { p, out, async [Symbol.asyncDispose]() { p.kill("SIGKILL"); await p.exited; } };
}

test("an IPv6-only listener of another user on the agent's port does not block a push, and the agent keeps answering", async () => {
  const v2 = await release("v2");
  await using v6 = asNobody("v6only", `
import socket, time
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s.bind(("::", 8765)); s.listen(); print("listening", flush=True)
time.sleep(600)
`);
  await until(() => /:223D 0+:0000 0A /.test(readFileSync("/proc/net/tcp6", "utf8")), "the v6 listener to show in /proc/net/tcp6");
  const r = await fleet.push(w, v2.file);
  const h = await fleet.health(w);
  expect({ status: r.status, agent: [h.agent.release, h.agent.healthy], squatter: isAlive(v6.p.pid) }).toEqual({ status: 200, agent: [v2.id, true], squatter: true });
});

test("a squatter racing every restart window never gets the agent's or the updater's port", async () => {
  const [v1, v2] = [await release("v1"), await release("v2")];
  await using squat = asNobody("squat", `
import socket, time
end = time.time() + 120
while time.time() < end:
    for port in (8765, 8766):
        s = socket.socket()
        try:
            s.bind((${JSON.stringify(w.address)}, port)); s.listen()
            print("BOUND", port, flush=True); time.sleep(600)
        except OSError:
            s.close()
`);
  const outcomes: number[] = [];
  // Agent restart windows: four pushes (stop the old agent, start the new).
  for (const r of [v2, v1, v2, v1]) outcomes.push((await fleet.push(w, r.file)).status);
  // The updater's own window: a self-update re-executes it.
  const self = await fleet.update(["--host", "w1", "--artifact", v2.file, "--include-self"]);
  const h = await fleet.health(w);
  squat.p.kill("SIGKILL");
  expect({ outcomes, self: [self.code, self.row().agent, self.row().self], updater: h.release, agent: h.agent.healthy, squatter: await squat.out }).toEqual({
    outcomes: [200, 200, 200, 200],
    self: [0, "updated", "updated"],
    updater: v2.id,
    agent: true,
    squatter: "",
  });
});

test("the updater never signals a process of another user or one whose pid was handed out again", async () => {
  const w2 = fleet.worker("w2");
  // A decoy of another user that looks exactly like w2's agent from its argv.
  writeFileSync(join(scripts, "decnet"), "#!/bin/sh\nwhile :; do sleep 1; done\n", { mode: 0o755 });
  const decoy = Bun.spawn([...NOBODY, join(scripts, "decnet"), "agent", "--install-dir", w2.installDir]);
  await until(() => isAlive(decoy.pid) && readFileSync(`/proc/${decoy.pid}/cmdline`, "utf8").includes("agent"), "the decoy to run");
  const pushed = await fleet.push(w2, (await release("v2")).file);
  // The same identity check, directly: another uid, and a recycled pid (a start time that is not this process's).
  const mine = Bun.spawn(["sleep", "600"]);
  await until(() => startTime(mine.pid) !== null, "sleep to start");
  const sent = {
    otherUid: signalProc({ pid: decoy.pid, start: startTime(decoy.pid)! }, "SIGKILL"),
    recycled: signalProc({ pid: mine.pid, start: startTime(mine.pid)! + 1 }, "SIGKILL"),
    exact: signalProc({ pid: mine.pid, start: startTime(mine.pid)! }, "SIGTERM"),
  };
  await mine.exited;
  const decoyAlive = isAlive(decoy.pid);
  decoy.kill("SIGKILL");
  expect({ pushed: pushed.status, decoyAlive, sent }).toEqual({ pushed: 200, decoyAlive: true, sent: { otherUid: false, recycled: false, exact: true } });
});
