/**
 * What `swarm renew` costs a worker's clients: four lanes make fresh mTLS
 * connections to the agent and the updater in a loop while the master renews
 * the worker N times (each renewal swaps both daemons' listeners); counts
 * requests answered and lost, and checks the agent kept its pid.
 *
 *   bun bench/renew-under-load.ts [N]
 *   # with the kernel handing a closing listener's queue to its sibling:
 *   unshare -n sh -c 'ip link set lo up; sysctl -qw net.ipv4.tcp_migrate_req=1; bun bench/renew-under-load.ts 10'
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Fleet, release } from "../test/fleet/harness.ts";

const renewals = Number(process.argv[2] ?? 5);
await using fleet = await Fleet.create({ workers: 1 });
const w = fleet.worker("w1");
await fleet.startUpdater(w);
if ((await fleet.push(w, (await release("v1")).file)).status !== 200) throw new Error("first push failed");
const agentPid = fleet.pid(w, "agent");
const m = join(fleet.env.DECNET_HOME!, "ca", "master");
const tls = { cert: readFileSync(join(m, "worker.crt"), "utf8"), key: readFileSync(join(m, "worker.key"), "utf8"), ca: readFileSync(join(m, "ca.crt"), "utf8"), checkServerIdentity: () => undefined };

let ok = 0;
let lost = 0;
let stop = false;
const why: Record<string, number> = {};
async function lane(port: number) {
  while (!stop) {
    try {
      const r = await fetch(`https://${w.address}:${port}/health`, { tls, keepalive: false, signal: AbortSignal.timeout(5_000) } as RequestInit);
      await r.text();
      if (r.ok) ok++;
      else lost++;
    } catch (e) {
      lost++;
      const k = (e as { code?: string }).code ?? (e as Error).name;
      why[k] = (why[k] ?? 0) + 1;
    }
  }
}
const lanes = [8765, 8765, 8766, 8766].map(lane);
const t0 = performance.now();
const times: number[] = [];
for (let i = 0; i < renewals; i++) {
  const t = performance.now();
  const r = await fleet.cli(["swarm", "renew", "--host", "w1"]);
  if (r.code !== 0) throw new Error(r.stderr);
  times.push(Math.round(performance.now() - t));
}
stop = true;
await Promise.all(lanes);
const migrate = readFileSync("/proc/sys/net/ipv4/tcp_migrate_req", "utf8").trim();
console.log(JSON.stringify({
  renewals, tcp_migrate_req: Number(migrate), seconds: Math.round(performance.now() - t0) / 1000,
  renew_ms_median: times.sort((a, b) => a - b)[Math.floor(times.length / 2)], requests_ok: ok, requests_lost: lost, lost_by: why,
  agent_kept_pid: fleet.pid(w, "agent") === agentPid,
}));
