/**
 * The updater restarts exactly this worker's agent: found without a pid file,
 * a --daemon agent (which detached) really replaced, and another worker's
 * agent on the same machine left alone.
 */
import { expect, test } from "bun:test";
import { existsSync, rmSync } from "node:fs";
import { release } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";
import { isAlive, listeningInodes, pidsHoldingSockets } from "../../src/lib/procfs.ts";

const fleet = useFleet({ workers: 3 });

const holders = (address: string) => pidsHoldingSockets(listeningInodes(address, 8765)).filter(isAlive);

test("an update replaces a hand-started --daemon agent with no pid file, and leaves the other worker's agent alone", async () => {
  const [w1, w2] = [fleet.worker("w1"), fleet.worker("w2")];
  const other = await fleet.startAgent(w2);
  const mine = await fleet.startAgent(w1);
  rmSync(w1.paths.agentPid);
  await fleet.startUpdater(w1);
  const v1 = await release("v1");
  const r = await fleet.push(w1, v1.file);
  const pidFile = fleet.pid(w1, "agent");
  expect({
    status: r.status,
    oldAgentAlive: isAlive(mine),
    w1PortHolders: holders(w1.address),
    pidFileNamesTheNewAgent: pidFile === r.body.agent_pid && pidFile !== mine,
    otherAgent: { alive: isAlive(other), holders: holders(w2.address), pidFile: fleet.pid(w2, "agent") },
  }).toEqual({
    status: 200,
    oldAgentAlive: false,
    w1PortHolders: [pidFile],
    pidFileNamesTheNewAgent: true,
    otherAgent: { alive: true, holders: [other], pidFile: other },
  });
});

test("SIGTERM stops an agent cleanly: socket and pid file removed, port free", async () => {
  const w2 = fleet.worker("w2");
  const pid = fleet.pid(w2, "agent");
  process.kill(pid, "SIGTERM");
  const deadline = Date.now() + 5000;
  while (isAlive(pid) && Date.now() < deadline) await Bun.sleep(20);
  expect({ alive: isAlive(pid), sock: existsSync(w2.paths.agentSock), pidFile: existsSync(w2.paths.agentPid), holders: holders(w2.address) }).toEqual({ alive: false, sock: false, pidFile: false, holders: [] });
});

test("a foreign process holding the agent port fails the update with a 500 naming it; nothing stays switched, the next push works", async () => {
  const w3 = fleet.worker("w3");
  // Not a decnet agent: a plain listener that holds the port since before
  // the updater started (once the updater runs, its port guard keeps such a
  // listener from binding at all: see local-users.test.ts).
  const squatter = Bun.spawn(["bun", "-e", `Bun.listen({ hostname: "${w3.address}", port: 8765, socket: { data() {} } }); setInterval(() => {}, 1000)`], { stdout: "ignore", stderr: "ignore" });
  const deadline = Date.now() + 5000;
  while (holders(w3.address).length === 0 && Date.now() < deadline) await Bun.sleep(20);
  await fleet.startUpdater(w3, { DECNET_STOP_TIMEOUT_MS: "300" });
  const v1 = await release("v1");
  const r = await fleet.push(w3, v1.file);
  const after = { current: existsSync(w3.paths.current), journal: existsSync(w3.paths.stateJson), squatterAlive: isAlive(squatter.pid) };
  squatter.kill("SIGKILL");
  await squatter.exited;
  const next = await fleet.push(w3, v1.file);
  expect({
    status: r.status,
    code: r.body.error?.code,
    names: r.body.error?.message.includes(`held by pid ${squatter.pid}`),
    after,
    next: next.status,
  }).toEqual({ status: 500, code: "install_failed", names: true, after: { current: false, journal: false, squatterAlive: true }, next: 200 });
});
