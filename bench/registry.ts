/**
 * The registry at scale (issue 20): 1,000 registered hosts and 5,000 push
 * rows, on bun:sqlite and on a real PostgreSQL server (test/fleet/postgres.ts,
 * on loopback). Measured: the registry part of `swarm list` and `swarm
 * status` (open — the schema check included — and read every host; status
 * reads the same rows, then asks each host, which is not the registry's
 * cost), warm reads on an open connection, and the compiled binary's whole
 * `swarm list --json`. `bun bench/registry.ts`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "../src/core/registry.ts";
import { selectHosts } from "../src/core/swarm/hosts.ts";
import { binaries, runCli } from "../test/fleet/harness.ts";
import { Postgres, postgresMissing } from "../test/fleet/postgres.ts";

const HOSTS = 1_000;
const PUSHES = 5_000;
const RUNS = 15;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return Math.round(median(times) * 10) / 10;
}

async function fill(loc: string): Promise<void> {
  using reg = new Registry(loc);
  await reg.db.tx(async () => {
    for (let i = 0; i < HOSTS; i++) {
      const name = `h${String(i).padStart(4, "0")}`;
      await reg.addHost({ name, address: `10.${(i >> 8) & 255}.${i & 255}.1`, sans: [name], agent_port: 8765, updater_port: 8766, enrolled_at: new Date().toISOString(), has_updater: true });
    }
    for (let i = 0; i < PUSHES; i++) {
      await reg.recordPush({
        host: `h${String(i % HOSTS).padStart(4, "0")}`, kind: "update", release_id: "r".repeat(64), version: "1.0.0", outcome: "updated", detail: "updated",
        operator: "bench@here", at: new Date().toISOString(), duration_ms: 1000, bytes_sent: 1_000_000, rollout_id: null,
      });
    }
  });
}

interface Figures {
  backend: string;
  fill_ms: number;
  list_cold_ms: number;
  status_registry_cold_ms: number;
  list_warm_ms: number;
  cli_list_ms: number;
}

async function measure(backend: string, loc: string, bin: string, home: string): Promise<Figures> {
  const t0 = performance.now();
  await fill(loc);
  const fill_ms = Math.round(performance.now() - t0);
  const list_cold_ms = await timed(async () => {
    using reg = new Registry(loc);
    if ((await reg.hosts()).length !== HOSTS) throw new Error("hosts missing");
  });
  const status_registry_cold_ms = await timed(async () => {
    using reg = new Registry(loc);
    if ((await selectHosts(reg, [], true)).length !== HOSTS) throw new Error("hosts missing");
  });
  using warm = new Registry(loc);
  const list_warm_ms = await timed(() => warm.hosts());
  const env = backend === "sqlite" ? { DECNET_HOME: home, DECNET_REGISTRY_URL: "" } : { DECNET_HOME: home, DECNET_REGISTRY_URL: loc };
  const cli_list_ms = await timed(async () => {
    const r = await runCli(bin, ["swarm", "list", "--json"], env);
    if (r.code !== 0 || JSON.parse(r.stdout).length !== HOSTS) throw new Error(`swarm list: ${r.stderr}`);
  });
  return { backend, fill_ms, list_cold_ms, status_registry_cold_ms, list_warm_ms, cli_list_ms };
}

const dir = mkdtempSync(join(tmpdir(), "decnet-bench-registry-"));
const { bin } = await binaries();
const rows: Figures[] = [];
try {
  const sqliteHome = join(dir, "home-sqlite");
  rows.push(await measure("sqlite", join(sqliteHome, "swarm.db"), bin, sqliteHome));
  const missing = postgresMissing();
  if (missing) console.log(`postgres: skipped (${missing})`);
  else {
    await using pg = await Postgres.start();
    const url = pg.url(await pg.createDb("bench"));
    rows.push(await measure("postgres", url, bin, join(dir, "home-pg")));
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`registry with ${HOSTS} hosts, ${PUSHES} pushes; medians of ${RUNS} runs (ms)`);
console.table(rows);
