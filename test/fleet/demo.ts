/**
 * `bun run demo`: a three-worker fleet on loopback, from nothing to a push, a
 * broken push rolled back automatically, and a manual rollback — printing what
 * an operator would see. Cleans up after itself.
 */
import { Fleet, release } from "./harness.ts";

const step = (s: string) => process.stdout.write(`\n\x1b[1m== ${s}\x1b[0m\n`);
const t0 = performance.now();

async function show(fleet: Fleet, args: string[]) {
  process.stdout.write(`$ decnet ${args.join(" ")}\n`);
  const r = await fleet.cli(args);
  process.stdout.write(r.stdout);
  if (r.stderr.trim()) process.stdout.write(r.stderr.replace(/^/gm, "  "));
  return r;
}

step("building decnet and packing releases (one compiled binary for every role)");
const [v1, v2, broken] = await Promise.all([release("v1"), release("v2"), release("agent-exits")]);

await using fleet = await Fleet.create({ workers: 3, env: { DECNET_PROBE_TIMEOUT_MS: "5000" } });
step(`a fleet of three workers on ${fleet.workers.map((w) => w.address).join(", ")} (DECNET_HOME=${fleet.env.DECNET_HOME})`);
await show(fleet, ["swarm", "list"]);
for (const w of fleet.workers) {
  const pid = await fleet.startUpdater(w);
  process.stdout.write(`  ${w.name}: updater pid ${pid} on ${w.address}:8766\n`);
}

step("first push: every worker gets its first release");
await show(fleet, ["swarm", "update", "--all", "--artifact", v1.file]);

step("a new version");
await show(fleet, ["swarm", "update", "--all", "--artifact", v2.file]);

step("a broken release (its agent exits at once): each updater rolls back by itself");
const bad = await show(fleet, ["swarm", "update", "--host", "w1,w2", "--artifact", broken.file]);
process.stdout.write(`  (exit code ${bad.code})\n`);

step("a manual rollback, and what w3 keeps");
await show(fleet, ["swarm", "rollback", "--host", "w3"]);
await show(fleet, ["swarm", "releases", "--host", "w3"]);
await show(fleet, ["swarm", "list"]);

const ok = bad.code === 1 && (await fleet.health(fleet.worker("w1"))).agent.release === v2.id;
step(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s; stopping the fleet and removing its files`);
if (!ok) {
  process.stderr.write("demo: the fleet did not end where it should have\n");
  process.exitCode = 1;
}
