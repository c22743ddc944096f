/**
 * The registry, the same file run against both backends (DESIGN §15):
 * bun:sqlite in a temp dir, and a real PostgreSQL server started here
 * (test/fleet/postgres.ts), a fresh database per backend run. Hosts, push
 * history, rollouts (compare-and-set, a host's outcome with its push rows in
 * one transaction), identity records, leases, and the refusal of a schema
 * newer than this binary. A machine without PostgreSQL skips only that half
 * and says why.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Issued } from "../../src/core/ca.ts";
import { IdentityStore } from "../../src/core/registry-identity.ts";
import { numbered } from "../../src/core/registry-db.ts";
import { Leases } from "../../src/core/registry-leases.ts";
import { pgError, redactUrl, validatePgUrl } from "../../src/core/registry-pg.ts";
import { RegistryRollouts } from "../../src/core/registry-rollouts.ts";
import { sqliteMigrations } from "../../src/core/registry-schema.ts";
import { Registry, type Push } from "../../src/core/registry.ts";
import type { Rollout } from "../../src/core/rollout/store.ts";
import { DecnetError } from "../../src/lib/errors.ts";
import { Postgres, postgresMissing } from "../fleet/postgres.ts";

const dir = mkdtempSync(join(tmpdir(), "decnet-registry-"));
let pg: Postgres | null = null;
const missing = postgresMissing();
if (missing) console.warn(`registry.test: PostgreSQL half skipped: ${missing}`);

beforeAll(async () => {
  if (!missing) pg = await Postgres.start();
}, 60_000);
afterAll(async () => {
  await pg?.[Symbol.asyncDispose]();
  rmSync(dir, { recursive: true, force: true });
});

let n = 0;
/** A new, empty registry on `backend`: a file, or a database of its own. */
async function fresh(backend: "sqlite" | "postgres"): Promise<string> {
  if (backend === "sqlite") return join(dir, `r${++n}.db`);
  return pg!.url(await pg!.createDb("reg"));
}

const host = (name: string) => ({ name, address: `127.0.0.${++n % 250}`, sans: [name], agent_port: 8765, updater_port: 8766, enrolled_at: "2026-01-01T00:00:00.000Z", has_updater: true });
const push = (h: string, outcome: string, release: string | null, rollout: string | null = null): Push => ({
  host: h, kind: "update", release_id: release, version: "1.0.0", outcome, detail: outcome, operator: "ann@laptop", at: new Date().toISOString(), duration_ms: 12, bytes_sent: 3_000_000_000, rollout_id: rollout,
});
const issued = (serial: string, role: Issued["role"], cn: string, notAfter = "2099-01-01T00:00:00.000Z"): Issued => ({
  certPem: "", serial, cn, role, notBefore: "2026-01-01T00:00:00.000Z", notAfter, spki: `spki-${serial}`,
});

function rollout(id: string, hosts: string[]): Rollout {
  const at = new Date().toISOString();
  return {
    id, created_at: at, updated_at: at, operator: "ann@laptop", state: "running",
    release: { id: "r".repeat(64), version: "1.0.0", size: 5_000_000_000, source: "test", signer: null }, release_file: "kept",
    settings: { canary: null, batch: null, max_failures: null, max_unreachable: null, pause: null, pause_ms: 0, limits: { failures: null, unreachable: null }, halt_rollback: false, include_self: false, full: false, allow_downgrade: false, concurrency: 8 },
    batches: [hosts], canaries: false, run: 1, budget_from: 1, owner: "here 1 1", halt_reason: null,
    hosts: hosts.map((host) => ({ host, batch: 0, state: "pending", run: null, started_at: null, finished_at: null, result: null, note: null })),
  };
}

test("a URL is shown with its password hidden, checked before any connection, and a failure is one line saying what to check", () => {
  const where = "postgres://ann:***@db:5432/decnet";
  const failed = (e: unknown) => (e instanceof DecnetError ? `${e.message} — ${e.hint}` : `not a DecnetError: ${String(e)}`);
  const bad = (url: string) => {
    try {
      validatePgUrl(url, redactUrl(url));
      return "accepted";
    } catch (e) {
      return failed(e);
    }
  };
  expect({
    redacted: [redactUrl("postgres://ann:s3cret@db:5432/decnet"), redactUrl("postgres//ann:s3cret@db"), redactUrl("postgres://db/decnet")],
    urls: [bad("postgres://ann:s3cret@db:5432/decnet"), bad("mysql://db/x"), bad("postgres://db"), bad("nonsense")].map((m) => m.split(" — ")[0]),
    refused: failed(pgError(Object.assign(new Error("Failed to connect"), { code: "ERR_POSTGRES_CONNECTION_REFUSED" }), where)),
    login: failed(pgError(Object.assign(new Error('password authentication failed for user "ann"'), { code: "ERR_POSTGRES_SERVER_ERROR", errno: "28P01" }), where)),
    rights: failed(pgError(Object.assign(new Error("permission denied for schema public"), { code: "ERR_POSTGRES_SERVER_ERROR", errno: "42501" }), where)).split(" — ")[0],
    other: pgError(new TypeError("a bug"), where) instanceof DecnetError,
    numbered: numbered("SELECT $a, $b, $a WHERE x = $c", { a: 1, b: null, c: "z" }),
  }).toEqual({
    redacted: ["postgres://ann:***@db:5432/decnet", "postgres//***@db", "postgres://db/decnet"],
    urls: [
      "accepted",
      "DECNET_REGISTRY_URL mysql://db/x is malformed: the scheme is mysql, not postgres",
      "DECNET_REGISTRY_URL postgres://db is malformed: it names no database (…/DBNAME)",
      "DECNET_REGISTRY_URL nonsense is malformed: it is not a URL",
    ],
    refused: `cannot reach the registry at ${where} (Failed to connect) — check that PostgreSQL runs there and accepts connections on that address and port`,
    login: `the registry at ${where} refused the login: password authentication failed for user "ann" — check the user and password in DECNET_REGISTRY_URL and the server's pg_hba.conf`,
    rights: `the registry at ${where}: permission denied for schema public`,
    other: false,
    numbered: ["SELECT $1, $2, $1 WHERE x = $3", [1, null, "z"]],
  });
});

for (const backend of ["sqlite", "postgres"] as const) {
  describe.skipIf(backend === "postgres" && missing !== null)(backend, () => {
    test("hosts: added, read back, duplicates refused in one line, decommissioned once", async () => {
      using reg = new Registry(await fresh(backend));
      await reg.addHost(host("w2"));
      await reg.addHost(host("w1"));
      const dup = await reg.addHost(host("w1")).then(() => null, (e: unknown) => e);
      await reg.decommission("w2", "2026-02-01T00:00:00.000Z");
      await reg.decommission("w2", "2026-03-01T00:00:00.000Z");
      await reg.setHasUpdater("w1");
      const w1 = await reg.host("w1");
      expect({
        names: (await reg.hosts()).map((h) => h.name),
        w1: { sans: w1?.sans, ports: [w1?.agent_port, w1?.updater_port], has_updater: w1?.has_updater },
        w2: (await reg.host("w2"))?.decommissioned_at,
        none: await reg.host("nope"),
        dup: dup instanceof DecnetError ? dup.message : String(dup),
      }).toEqual({
        names: ["w1", "w2"], w1: { sans: ["w1"], ports: [8765, 8766], has_updater: true }, w2: "2026-02-01T00:00:00.000Z", none: null,
        dup: "host w1 is already enrolled",
      });
    });

    test("push history: in order, numbers as numbers (beyond 32 bits), the host's last release only from an update that worked", async () => {
      using reg = new Registry(await fresh(backend));
      await reg.addHost(host("w1"));
      await reg.recordPush(push("w1", "updated", "a".repeat(64)));
      await reg.recordPush(push("w1", "rolled-back", "b".repeat(64)));
      const h = await reg.host("w1");
      const p = await reg.pushes("w1");
      expect({ outcomes: p.map((x) => x.outcome), bytes: p[0]!.bytes_sent, last: [h?.last_release?.[0], h?.last_result], other: await reg.pushes("w9") }).toEqual({
        outcomes: ["updated", "rolled-back"], bytes: 3_000_000_000, last: ["a", "update: rolled-back"], other: [],
      });
    });

    test("a transaction that fails leaves nothing behind", async () => {
      using reg = new Registry(await fresh(backend));
      await reg.addHost(host("w1"));
      const e = await reg.db.tx(async () => {
        await reg.recordPush(push("w1", "updated", "a".repeat(64)));
        throw new Error("midway");
      }).catch((x: Error) => x.message);
      expect({ e, pushes: await reg.pushes(), last: (await reg.host("w1"))?.last_release }).toEqual({ e: "midway", pushes: [], last: null });
    });

    test("rollouts: created, read back whole; a transition is compare-and-set; a host's outcome lands with its push rows", async () => {
      const loc = await fresh(backend);
      await using store = new RegistryRollouts(new Registry(loc));
      await store.reg.addHost(host("w1"));
      await store.create(rollout("0000000a", ["w1", "w2"]));
      const expect1 = { state: "running" as const, owner: "here 1 1", run: 1 };
      const first = await store.transition("0000000a", expect1, { state: "halted", owner: null }, new Date().toISOString());
      const second = await store.transition("0000000a", expect1, { state: "aborted", owner: null }, new Date().toISOString());
      const fromNull = await store.transition("0000000a", { state: "halted", owner: null, run: 1 }, { state: "running", owner: "there 2 2", run: 2 }, new Date().toISOString(), ["pending"]);
      await store.hostStarted("0000000a", "w1", 2, new Date().toISOString());
      await store.hostFinished("0000000a", "w1", { state: "updated", run: 2, at: new Date().toISOString(), result: { host: "w1" } as never, pushes: [push("w1", "updated", "c".repeat(64), "0000000a")] });
      const r = await store.get("0000000a");
      expect({
        cas: [first, second, fromNull],
        r: { state: r?.state, owner: r?.owner, run: r?.run, size: r?.release.size, canaries: r?.canaries, batches: r?.batches, hosts: r?.hosts.map((h) => [h.host, h.state, h.run, h.result?.host ?? null]) },
        list: (await store.list(5)).map((x) => x.id), state: await store.state("0000000a"), gone: await store.get("0000000b"),
        history: (await store.reg.pushes("w1")).map((p) => p.outcome), last: (await store.reg.host("w1"))?.last_release?.[0],
      }).toEqual({
        cas: [true, false, true],
        r: { state: "running", owner: "there 2 2", run: 2, size: 5_000_000_000, canaries: false, batches: [["w1", "w2"]], hosts: [["w1", "updated", 2, "w1"], ["w2", "pending", null, null]] },
        list: ["0000000a"], state: "running", gone: null, history: ["updated"], last: "c",
      });
    });

    test("a rollout's release (and another target's) is kept in the registry only when it is shared, read back byte for byte, dropped together", async () => {
      await using store = new RegistryRollouts(new Registry(await fresh(backend)));
      await store.create(rollout("0000000c", ["w1"]));
      const src = join(dir, `release-${backend}.tar.gz`);
      const bytes = crypto.getRandomValues(new Uint8Array(300_000));
      writeFileSync(src, bytes);
      await store.keepShared("0000000c", "r".repeat(64), async () => src);
      const out = join(dir, `fetched-${backend}`, "0000000c.tar.gz");
      const fetched = await store.fetchShared("0000000c", out);
      const same = fetched && Buffer.compare(readFileSync(out), Buffer.from(bytes)) === 0;
      // Another target's release of a mixed fleet, under its own key; a neighbour rollout's is not the rollout's.
      await store.keepShared("0000000c.linux-arm64", "a".repeat(64), async () => src);
      await store.keepShared("0000000d", "d".repeat(64), async () => src);
      const other = await store.fetchShared("0000000c.linux-arm64", `${out}.arm64`);
      await store.dropShared("0000000c");
      const after = [await store.fetchShared("0000000c", out), await store.fetchShared("0000000c.linux-arm64", out), await store.fetchShared("0000000d", out)];
      expect({ fetched, same, other, after }).toEqual(
        backend === "postgres" ? { fetched: true, same: true, other: true, after: [false, false, true] } : { fetched: false, same: false, other: false, after: [false, false, false] },
      );
    });

    test("identity: certificates newest first (the later of one millisecond first), revocation once, the CRL state, joins, events", async () => {
      using ids = new IdentityStore(await fresh(backend), "ann@laptop");
      await ids.tx(async () => {
        await ids.recordIssued(issued("0A", "agent", "w1"), "w1", new Date("2026-01-01T00:00:00.000Z"));
        await ids.recordIssued(issued("0B", "updater", "w1"), "w1", new Date("2026-01-01T00:00:00.000Z"));
        await ids.recordIssued(issued("0C", "agent", "w1", "2020-01-01T00:00:00.000Z"), "w1", new Date("2025-01-01T00:00:00.000Z"));
      });
      const revoked = [await ids.markRevoked(["0a", "0d"], "superseded"), await ids.markRevoked(["0a"], "superseded")];
      await ids.setCrlState({ number: 1, this_update: "t1", next_update: "n1" });
      await ids.setCrlState({ number: 2, this_update: "t2", next_update: "n2" });
      await ids.openJoin("w2", "secret", new Date("2030-01-01T00:00:00.000Z"), new Date(), { address: "10.0.0.2", sans: ["w2"] });
      await ids.bindJoin("w2", "a,u");
      await ids.finishJoin("w2");
      await ids.event("enroll", "w1", "{}");
      expect({
        order: (await ids.certs("w1", ["agent", "updater"])).map((c) => c.serial),
        active: (await ids.certs("w1", ["agent", "updater"], { active: true })).map((c) => c.serial),
        revoked, listed: (await ids.revokedUnexpired()).map((c) => [c.serial, c.revoke_reason, c.revoked_by]),
        names: await ids.names("agent"), cert: (await ids.cert("0B"))?.role,
        crl: await ids.crlState(), join: await ids.join("w2").then((j) => [j?.state, j?.secret, j?.bound_keys, j?.address]),
        events: (await ids.events("w1")).map((e) => `${e.action} by ${e.operator}`),
      }).toEqual({
        order: ["0b", "0a", "0c"], active: ["0b"], revoked: [["0a"], []], listed: [["0a", "superseded", "ann@laptop"]],
        names: ["w1"], cert: "updater", crl: { number: 2, this_update: "t2", next_update: "n2" }, join: ["done", null, "a,u", "10.0.0.2"],
        events: ["enroll by ann@laptop"],
      });
    });

    test("leases: one holder per host, named to the next; the same rollout takes its own back; expired ones are taken; a lost one is noticed; given back on dispose", async () => {
      const loc = await fresh(backend);
      const a = new Leases("masterA 1 1", "0000000a", loc, 1_000);
      const b = new Leases("masterB 2 2", "0000000b", loc, 1_000);
      const refusedA = await a.acquire(["w1", "w2", "w3"]);
      const refusedB = await b.acquire(["w3", "w4"]);
      const held = refusedB.get("w3");
      const again = await a.acquire(["w1"]); // ours already
      const resumer = new Leases("masterC 3 3", "0000000a", loc, 1_000);
      const takeover = await resumer.acquire(["w1"]);
      await resumer[Symbol.asyncDispose]();
      // A stops heartbeating (as if killed): after the timeout B takes w2.
      const stale = new Leases("masterD 4 4", null, loc, 1_000);
      await Bun.sleep(1_100);
      const beforeBeatStops = await stale.acquire(["w2"]);
      // A lease taken from under A (as after heartbeats failing past the timeout): A sees it lost before pushing there.
      using tamper = new Registry(loc);
      await tamper.db.run("UPDATE leases SET holder = 'thief 9 9', operator = 'eve@elsewhere' WHERE host = 'w2'");
      // w1: the resumer of A's rollout took it and gave it back.
      const lost = [(await a.lost("w1"))?.operator, (await a.lost("w2"))?.operator, await a.lost("w3")];
      await a[Symbol.asyncDispose]();
      const afterA = await b.acquire(["w3"]);
      await b[Symbol.asyncDispose]();
      await stale[Symbol.asyncDispose]();
      using reg = new Registry(loc);
      expect({
        a: [...refusedA.keys()], b: [...refusedB.keys()], held: [held?.holder, held?.rollout_id, held?.operator.length! > 0], again: [...again.keys()],
        takeover: [...takeover.keys()], heartbeatKeptW2: [...beforeBeatStops.keys()], lost, afterA: [...afterA.keys()],
        left: await reg.db.all("SELECT host FROM leases ORDER BY host"),
      }).toEqual({
        a: [], b: ["w3"], held: ["masterA 1 1", "0000000a", true], again: [],
        takeover: [], heartbeatKeptW2: ["w2"], lost: ["no one (this master's lease was lost)", "eve@elsewhere", null], afterA: [], left: [{ host: "w2" }],
      });
    });

    test("a registry at a newer schema than this binary is refused in one line naming it", async () => {
      const loc = await fresh(backend);
      {
        using reg = new Registry(loc);
        await reg.db.run("INSERT INTO schema_version (version, name, applied_at, applied_by) VALUES (99, 'future', 'then', 'someone')");
      }
      const e = await (async () => {
        using again = new Registry(loc);
        return await again.hosts();
      })().then(() => null, (x: unknown) => x);
      expect(e instanceof DecnetError ? e.message : String(e)).toMatch(new RegExp(`^the registry \\S+ is at schema version 99, newer than this decnet knows \\(${sqliteMigrations.length}\\)`));
    });
  });
}
