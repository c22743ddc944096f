/**
 * A registry a team shares (DESIGN §15), with the compiled binary, real
 * workers on loopback and a real PostgreSQL server started for this file:
 * enroll, update, rollout, list and history with DECNET_REGISTRY_URL (rows
 * read back with psql, no swarm.db); two operator homes with the CA copied
 * share the fleet (B as an operator identity: operator@bee on its rows); a
 * rollout's leases refuse the other operator's push and
 * free the host when it ends; a master killed -9 on another machine (its own
 * UTS namespace, so another hostname) holds its hosts until the leases
 * expire, then the other resumes its rollout with the release kept in the
 * registry; `registry migrate` of 3 hosts and 10 pushes, twice; a malformed
 * URL, an unreachable server, a database without rights: one line, exit 1.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { cpSync, existsSync, mkdirSync, readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { type CliResult, type Packed, release, runCli, until, type Worker } from "../fleet/harness.ts";
import { Postgres, postgresMissing } from "../fleet/postgres.ts";
import { pgMigrations } from "../../src/core/registry-pg.ts";
import { useFleet } from "../fleet/use-fleet.ts";

const missing = postgresMissing();
if (missing) console.warn(`registry-pg.test: skipped: ${missing}`);
const canUnshare = process.getuid?.() === 0 && Bun.which("unshare") !== null;
// Long enough that B's own start (reading a 50 MB release) never outlasts a killed A's last heartbeat on a loaded machine.
const LEASE_MS = 10_000;
let pg: Postgres;
let db = "";
// Filled before the fleet is made (this beforeAll is registered first).
const env: Record<string, string> = { DECNET_PROBE_TIMEOUT_MS: "3000", NO_COLOR: "1", DECNET_LEASE_TIMEOUT_MS: String(LEASE_MS) };
beforeAll(async () => {
  if (missing) return;
  pg = await Postgres.start();
  db = await pg.createDb("fleet");
  env.DECNET_REGISTRY_URL = pg.url(db, "postgres").replace("postgres@", "postgres:hunter2@");
}, 60_000);
afterAll(async () => {
  await pg?.[Symbol.asyncDispose]();
});

const fleet = useFleet({ workers: 4, env, start: missing ? [] : "all" });
const t = missing ? test.skip : test;
const W = (n: string) => fleet.worker(n);
const current = (w: Worker) => readlinkSync(w.paths.current).replace("releases/", "");
const oneLine = (r: CliResult) => r.stderr.trim().split("\n").length === 1 && !/\n\s+at |\.ts:\d+/.test(r.stderr);
const json = (r: CliResult) => JSON.parse(r.stdout);
const psql = (sql: string) => pg.psql(db, sql);
let v1: Packed, v2: Packed, v3: Packed, v4: Packed;

/**
 * Operator B: another home, the CA copied, the same registry; its master
 * identity is an operator identity A issued (`swarm operator add bee`), so
 * what B does is recorded as operator@bee.
 */
let bReady: Promise<void> | null = null;
const B_HOME = () => join(fleet.root, "home-b");
function homeB(): Record<string, string> {
  return { DECNET_HOME: B_HOME() };
}
async function asB(args: string[]): Promise<CliResult> {
  bReady ??= (async () => {
    const b = B_HOME();
    mkdirSync(join(b, "ca"), { recursive: true });
    for (const f of readdirSync(join(fleet.env.DECNET_HOME!, "ca"))) {
      if (f.startsWith("master")) continue;
      cpSync(join(fleet.env.DECNET_HOME!, "ca", f), join(b, "ca", f), { recursive: true });
    }
    const add = await fleet.cli(["swarm", "operator", "add", "bee", "--out", join(b, "ca", "master")]);
    if (add.code !== 0) throw new Error(`operator add: ${add.stderr}`);
  })();
  await bReady;
  return fleet.cli(args, { env: homeB() });
}

/** A master run with --events on stdout, read as it happens; `hostname` runs it as another machine. */
class Master {
  readonly events: any[] = [];
  stderr = "";
  readonly proc;
  readonly done: Promise<number>;
  constructor(args: string[], o: { hostname?: string } = {}) {
    const argv = o.hostname ? ["unshare", "-u", "sh", "-c", `hostname ${o.hostname} && exec "$0" "$@"`, fleet.bin, ...args] : [fleet.bin, ...args];
    this.proc = Bun.spawn(argv, { env: { ...process.env, ...fleet.env }, cwd: fleet.root, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
    const read = async (s: ReadableStream<Uint8Array>, onText: (t: string) => void) => {
      const dec = new TextDecoder();
      for await (const c of s) onText(dec.decode(c, { stream: true }));
    };
    let buf = "";
    const out = read(this.proc.stdout, (t) => {
      buf += t;
      const lines = buf.split("\n");
      buf = lines.pop()!;
      for (const l of lines) this.events.push(JSON.parse(l));
    });
    const errs = read(this.proc.stderr, (t) => (this.stderr += t));
    this.done = Promise.all([out, errs, this.proc.exited]).then(([, , code]) => code);
  }
  until(pred: (e: any) => boolean, what: string): Promise<any> {
    return until(() => this.events.find(pred), what, 60_000, 5);
  }
}

beforeAll(async () => {
  if (missing) return;
  [v1, v2, v3, v4] = await Promise.all([release("v1"), release("v2"), release("v3"), release("v4")]);
});

t("enroll, update, rollout, list and history with DECNET_REGISTRY_URL: the rows are in PostgreSQL, and no swarm.db is made", async () => {
  const up = await fleet.update(["--all", "--artifact", v1.file]);
  const list = json(await fleet.cli(["swarm", "list", "--json"]));
  const hist = json(await fleet.cli(["swarm", "history", "--json"]));
  const rollouts = json(await fleet.cli(["swarm", "rollout", "list", "--json"]));
  expect({
    code: up.code,
    rows: up.report?.hosts.map((h) => [h.host, h.agent]),
    list: list.map((h: any) => [h.name, h.last_release]),
    history: hist.map((p: any) => [p.host, p.outcome, p.rollout_id === (up.report as any).rollout.id]).sort(),
    rollouts: rollouts.length,
    pg: {
      hosts: await psql("SELECT string_agg(name || '=' || left(last_release, 12), ',' ORDER BY name) FROM hosts"),
      pushes: await psql("SELECT count(*) FROM pushes WHERE outcome = 'updated'"),
      rollout: await psql(`SELECT state FROM rollouts WHERE id = '${(up.report as any).rollout.id}'`),
      certs: Number(await psql("SELECT count(*) FROM certs WHERE role IN ('agent', 'updater')")),
      schema: await psql("SELECT max(version) FROM schema_version"),
      leases: await psql("SELECT count(*) FROM leases"),
    },
    swarmDb: existsSync(join(fleet.env.DECNET_HOME!, "swarm.db")),
  }).toEqual({
    code: 0,
    rows: ["w1", "w2", "w3", "w4"].map((h) => [h, "updated"]),
    list: ["w1", "w2", "w3", "w4"].map((h) => [h, v1.id]),
    history: ["w1", "w2", "w3", "w4"].map((h) => [h, "updated", true]).sort(),
    rollouts: 1,
    pg: { hosts: ["w1", "w2", "w3", "w4"].map((h) => `${h}=${v1.id.slice(0, 12)}`).join(","), pushes: "4", rollout: "done", certs: 8, schema: String(pgMigrations.length), leases: "0" },
    swarmDb: false,
  });
});

t("two operator homes share the fleet; A's rollout holds w3, so B's push to w3 is refused naming it; once A is done, B's push works", async () => {
  const bList = json(await asB(["swarm", "list", "--json"]));
  const bHistory = json(await asB(["swarm", "history", "--json"]));
  // A: w1,w2 then a pause, then w3,w4: w3 is leased to A the whole time. The pause outlasts B's three commands even on a
  // loaded machine (B unpacks and hashes its 110 MB release before it asks for leases: a 4 s pause once let A finish first).
  const a = new Master(["swarm", "update", "--all", "--batch", "2", "--pause", "15s", "--artifact", v2.file, "--events"]);
  await a.until((e) => e.event === "rollout.paused", "A's pause");
  const refused = await asB(["swarm", "update", "--host", "w3", "--artifact", v3.file, "--json"]);
  const leaseRow = json(refused).hosts[0];
  const w3WhileLeased = current(W("w3"));
  const rollbackRefused = await asB(["swarm", "rollback", "--host", "w3"]);
  const renewRefused = await asB(["swarm", "renew", "--host", "w4", "--json"]);
  const aStillPaused = !a.events.some((e) => e.event === "host.started" && (e.host === "w3" || e.host === "w4"));
  const aCode = await a.done;
  const aFinished = a.events.find((e) => e.event === "rollout.finished");
  const after = await asB(["swarm", "update", "--host", "w3", "--artifact", v3.file, "--json"]);
  const renewB = await asB(["swarm", "renew", "--host", "w1", "--json"]);
  const rolloutId = (await psql("SELECT id FROM rollouts WHERE release_id = '" + v2.id + "'")).trim();
  const who = {
    a: await psql(`SELECT operator FROM rollouts WHERE id = '${rolloutId}'`),
    b: await psql(`SELECT operator FROM rollouts WHERE release_id = '${v3.id}' ORDER BY created_at LIMIT 1`),
    bPushes: await psql(`SELECT string_agg(DISTINCT operator, ',') FROM pushes WHERE release_id = '${v3.id}'`),
    bEvents: await psql("SELECT string_agg(DISTINCT action, ',') FROM identity_events WHERE operator = 'operator@bee'"),
  };
  expect({
    b: [bList.map((h: any) => h.name), bHistory.length],
    refused: [refused.code, leaseRow.agent, leaseRow.error_code, leaseRow.detail.includes(`rollout ${rolloutId}`), /since \d{4}-/.test(leaseRow.detail), w3WhileLeased !== v3.id],
    a: [aCode, aFinished?.state],
    after: [after.code, json(after).hosts[0].agent, current(W("w3"))],
    rollbackRefused: [rollbackRefused.code, oneLine(rollbackRefused), rollbackRefused.stderr.includes(`host w3 is leased by rollout ${rolloutId} of `)],
    renewRefused: [renewRefused.code, json(renewRefused)[0]?.outcome, json(renewRefused)[0]?.detail.includes(`rollout ${rolloutId}`)],
    renewB: [renewB.code, json(renewB)[0]?.outcome],
    who: { ...who, a: who.a.includes("@") && who.a !== "operator@bee" },
    named: leaseRow.detail.includes(` of ${who.a} since `),
    aHeartbeats: a.stderr.match(/warning: the registry did not take[^\n]*/)?.[0] ?? "kept",
    aStillPaused,
  }).toEqual({
    b: [["w1", "w2", "w3", "w4"], 4],
    refused: [1, "error", "leased", true, true, true],
    a: [0, "done"],
    after: [0, "updated", v3.id],
    rollbackRefused: [1, true, true],
    renewRefused: [1, "leased", true],
    renewB: [0, "renewed"],
    who: { a: true, b: "operator@bee", bPushes: "operator@bee", bEvents: "renew" },
    named: true,
    aHeartbeats: "kept",
    aStillPaused: true,
  });
});

t.skipIf(!canUnshare)("kill -9 of A (another machine) mid-rollout: its leases hold w4 until they expire, then B resumes A's rollout with the release from the registry", async () => {
  const a = new Master(["swarm", "update", "--all", "--batch", "2", "--pause", "30s", "--artifact", v4.file, "--events"], { hostname: "decnet-a" });
  await a.until((e) => e.event === "rollout.paused", "A's first pause");
  const id = (await psql(`SELECT id FROM rollouts WHERE release_id = '${v4.id}'`)).trim();
  const owner = await psql(`SELECT owner FROM rollouts WHERE id = '${id}'`);
  a.proc.kill("SIGKILL");
  await a.done;
  const killedAt = Date.now();
  const pushW4 = await asB(["swarm", "update", "--host", "w4", "--artifact", v3.file, "--json"]);
  const early = await asB(["swarm", "rollout", "resume", id]);
  const shownEarly = json(await asB(["swarm", "rollout", "show", id, "--json"])).state;
  const earlyMs = Date.now() - killedAt;
  await Bun.sleep(Math.max(0, LEASE_MS + 500 - earlyMs));
  const shownLate = json(await asB(["swarm", "rollout", "show", id, "--json"])).state;
  const cachedBefore = existsSync(join(homeB().DECNET_HOME!, "cache", "rollouts", `${id}.tar.gz`));
  const resumed = await asB(["swarm", "rollout", "resume", id, "--json"]);
  const shown = json(await asB(["swarm", "rollout", "show", id, "--json"]));
  expect({
    owner: owner.startsWith("decnet-a "),
    pushW4: [pushW4.code, json(pushW4).hosts[0].error_code, json(pushW4).hosts[0].detail.includes(`rollout ${id}`)],
    early: [early.code, oneLine(early), early.stderr.includes(`rollout ${id} is running`), earlyMs < LEASE_MS],
    shown: [shownEarly, shownLate],
    cachedBefore,
    resumed: resumed.code,
    final: [shown.state, shown.hosts.map((h: any) => h.state)],
    workers: fleet.workers.map((w) => current(w) === v4.id),
    kept: await psql(`SELECT count(*) FROM rollout_releases WHERE rollout_id = '${id}'`),
    leases: await psql("SELECT count(*) FROM leases"),
  }).toEqual({
    owner: true,
    pushW4: [1, "leased", true],
    early: [1, true, true, true],
    shown: ["running", "interrupted"],
    cachedBefore: false,
    resumed: 0,
    final: ["done", ["updated", "updated", "updated", "updated"]],
    workers: [true, true, true, true],
    kept: "0",
    leases: "0",
  });
});

t("registry migrate copies a sqlite registry of 3 hosts and 10 pushes into PostgreSQL; a second run changes nothing", async () => {
  const solo = { DECNET_HOME: join(fleet.root, "home-solo"), DECNET_REGISTRY_URL: "" };
  for (const i of [1, 2, 3]) {
    const r = await fleet.cli(["swarm", "enroll", "--host", `s${i}`, "--address", `127.0.${200 + i}.1`, "--updater", "--out-dir", join(fleet.root, "solo-bundles", `s${i}`)], { env: solo });
    if (r.code !== 0) throw new Error(r.stderr);
  }
  // Ten history rows: rollbacks of hosts nothing listens for are recorded as errors.
  for (let i = 0; i < 10; i++) await fleet.cli(["swarm", "rollback", "--host", `s${(i % 3) + 1}`], { env: solo });
  const target = await pg.createDb("migrated");
  const url = pg.url(target);
  const first = await fleet.cli(["swarm", "registry", "migrate", "--to", url, "--json"], { env: solo });
  const counts = () => pg.psql(target, "SELECT (SELECT count(*) FROM hosts) || ',' || (SELECT count(*) FROM pushes) || ',' || (SELECT count(*) FROM certs) || ',' || (SELECT count(*) FROM identity_events)");
  const afterFirst = await counts();
  const second = await fleet.cli(["swarm", "registry", "migrate", "--to", url, "--json"], { env: solo });
  const copied = (r: CliResult) => Object.fromEntries(json(r).tables.map((t: any) => [t.table, t.copied]));
  const history = json(await fleet.cli(["swarm", "history", "--json"], { env: { DECNET_HOME: solo.DECNET_HOME, DECNET_REGISTRY_URL: url } }));
  expect({
    first: [first.code, copied(first).hosts, copied(first).pushes],
    afterFirst: afterFirst.split(",").slice(0, 2),
    second: [second.code, Object.values(copied(second)).every((n) => n === 0)],
    same: (await counts()) === afterFirst,
    history: history.length,
  }).toEqual({ first: [0, 3, 10], afterFirst: ["3", "10"], second: [0, true], same: true, history: 10 });
});

t("a malformed URL, an unreachable server, a database without rights: one line naming the URL (password hidden), exit 1, no swarm.db", async () => {
  await pg.psql("postgres", "CREATE ROLE norights LOGIN");
  const locked = await pg.createDb("locked");
  await pg.psql(locked, "REVOKE CREATE ON SCHEMA public FROM PUBLIC");
  const home = join(fleet.root, "home-bad");
  const run = (url: string) => runCli(fleet.bin, ["swarm", "list"], { DECNET_HOME: home, DECNET_REGISTRY_URL: url });
  const malformed = await run("postgres//nohost");
  const unreachable = await run(`postgres://ann:s3cret@127.0.0.1:1/decnet`);
  const noRights = await run(pg.url(locked, "norights"));
  const line = (r: CliResult) => [r.code, oneLine(r), r.stderr.includes("s3cret")];
  expect({
    malformed: [...line(malformed), malformed.stderr.includes("malformed")],
    unreachable: [...line(unreachable), unreachable.stderr.includes("postgres://ann:***@127.0.0.1:1/decnet"), unreachable.stderr.includes("cannot reach")],
    noRights: [...line(noRights), noRights.stderr.includes("permission denied"), noRights.stderr.includes("GRANT CREATE")],
    swarmDb: existsSync(join(home, "swarm.db")),
  }).toEqual({
    malformed: [1, true, false, true],
    unreachable: [1, true, false, true, true],
    noRights: [1, true, false, true, true],
    swarmDb: false,
  });
});
