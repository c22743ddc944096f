/**
 * A mixed fleet's cost (issue 21): the plan (a dry run that builds the
 * working tree, once per target among the hosts) and the push (one delta per
 * host, bodies planned per target) for two targets against one. Three
 * workers on loopback: w1 and w3 x64, w2 the arm64 build under qemu-user
 * (test/fleet/qemu.ts) — so the arm64 host's own install time is emulation
 * bound, and is shown per host rather than hidden in the total.
 *
 *   bun bench/mixed-fleet.ts
 */
import { Fleet, release, ROOT } from "../test/fleet/harness.ts";
import { ARM64_ENV, arm64Releases, qemuUnavailable } from "../test/fleet/qemu.ts";

const why = await qemuUnavailable();
if (why) {
  console.log(`mixed-fleet bench skipped: ${why}`);
  process.exit(0);
}
const [a, v1, v2] = [await arm64Releases(), await release("v1"), await release("v2")];
await using fleet = await Fleet.create({ workers: 3, env: { DECNET_PROBE_TIMEOUT_MS: "30000" } });
const [w1, w2, w3] = fleet.workers as [typeof fleet.workers[0], typeof fleet.workers[0], typeof fleet.workers[0]];
await fleet.startUpdater(w1);
await fleet.startUpdater(w3);
await fleet.startUpdater(w2, ARM64_ENV, a.bin);

async function timed(args: string[], cwd?: string) {
  const t0 = performance.now();
  const r = await fleet.cli(["swarm", "update", ...args, "--json"], { cwd });
  const ms = Math.round(performance.now() - t0);
  if (r.code !== 0) throw new Error(`swarm update ${args.join(" ")} failed (exit ${r.code}): ${r.stderr.trim().split("\n").slice(-3).join(" | ")}`);
  const j = JSON.parse(r.stdout) as { hosts?: Array<{ host: string; duration_ms: number; bytes_sent: number; transfer: { mode: string } | null }> };
  return { ms, hosts: (j.hosts ?? []).map((h) => `${h.host} ${h.transfer?.mode ?? "-"} ${(h.bytes_sent / 1e3).toFixed(0)} kB ${(h.duration_ms / 1000).toFixed(2)} s`) };
}

// Seed (untimed): every host on its own target's v1, and each host's target learned.
await timed(["--host", "w1,w3", "--artifact", v1.file]);
await timed(["--host", "w2", "--artifact", a.v1.file]);

const plan1 = await timed(["--host", "w1,w3", "--dry-run"], ROOT);
const plan2 = await timed(["--host", "w1,w2", "--dry-run"], ROOT);
const push1 = await timed(["--host", "w1,w3", "--artifact", v2.file]);
const push2 = await timed(["--host", "w1,w2", "--artifact", v1.file, "--artifact", a.v2.file]);

const rows: Array<[string, string]> = [
  ["plan, 1 target (2 x64 hosts, builds 1)", `${(plan1.ms / 1000).toFixed(2)} s`],
  ["plan, 2 targets (x64 + arm64, builds 2)", `${(plan2.ms / 1000).toFixed(2)} s`],
  ["push, 1 target (delta to 2 x64 hosts)", `${(push1.ms / 1000).toFixed(2)} s — ${push1.hosts.join("; ")}`],
  ["push, 2 targets (delta to x64 + arm64)", `${(push2.ms / 1000).toFixed(2)} s — ${push2.hosts.join("; ")}`],
];
for (const [k, v] of rows) console.log(`${k.padEnd(42)} ${v}`);
