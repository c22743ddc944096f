/**
 * Numbered registry migrations: a new registry gets every one, a registry
 * from before migrations is adopted with its rows, a newer one is refused
 * with one line and left as it is, and the asynchronous runner (the one the
 * PostgreSQL backend uses) does the same steps as the synchronous one.
 */
import { afterAll, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AsyncMigrationDriver, migrate } from "../../src/core/registry-migrate.ts";
import { openSqlite, sqliteDriver, sqliteMigrations } from "../../src/core/registry-schema.ts";
import { Registry } from "../../src/core/registry.ts";
import { DecnetError } from "../../src/lib/errors.ts";

const dir = mkdtempSync(join(tmpdir(), "decnet-migrate-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const who = () => "tester@here";

const versions = (file: string) => {
  const db = new Database(file, { readonly: true });
  try {
    return db.query<{ version: number; name: string; applied_by: string }, []>("SELECT version, name, applied_by FROM schema_version ORDER BY version").all();
  } finally {
    db.close();
  }
};
const tables = (db: Database) => db.query<{ name: string }, []>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all().map((t) => t.name);
const ALL = [{ version: 1, name: "hosts, pushes, identity", applied_by: "tester@here" }, { version: 2, name: "rollouts", applied_by: "tester@here" }, { version: 3, name: "join addresses", applied_by: "tester@here" }, { version: 4, name: "leases, shared releases", applied_by: "tester@here" }, { version: 5, name: "host targets", applied_by: "tester@here" }];
/** One past the newest migration this binary knows. */
const NEXT = ALL.length + 1;

test("a new registry gets every migration, each recorded once, however often it is opened", () => {
  const file = join(dir, "new.db");
  const db = openSqlite(file, who);
  const t = tables(db);
  db.close();
  openSqlite(file, who).close();
  expect({ versions: versions(file), tables: t }).toEqual({
    versions: ALL,
    tables: ["certs", "crl_state", "hosts", "identity_events", "joins", "leases", "pushes", "rollout_hosts", "rollout_releases", "rollouts", "schema_version"],
  });
});

test("a registry made before migrations (the schema as it was) is adopted with its rows, and gains the rollout tables", async () => {
  const file = join(dir, "old.db");
  const old = new Database(file, { create: true });
  // Exactly what decnet created before numbered migrations: migration 1's tables, no schema_version.
  old.exec(sqliteMigrations[0]!.sql);
  old.exec("INSERT INTO hosts (name, address, sans, agent_port, updater_port, enrolled_at, has_updater) VALUES ('w1', '127.0.0.1', '[]', 8765, 8766, 'then', 1)");
  old.exec("INSERT INTO pushes (host, kind, release_id, version, outcome, detail, operator, at, duration_ms, bytes_sent) VALUES ('w1', 'update', 'x', '1', 'updated', '', 'op', 'then', 1, 2)");
  old.close();
  using reg = new Registry(file);
  expect({ versions: versions(file).map(({ version, name }) => ({ version, name })), hosts: (await reg.hosts()).map((h) => h.name), pushes: (await reg.pushes()).map((p) => [p.host, p.outcome]), column: await reg.db.all("SELECT rollout_id FROM pushes") }).toEqual({
    versions: ALL.map(({ version, name }) => ({ version, name })),
    hosts: ["w1"],
    pushes: [["w1", "updated"]],
    column: [{ rollout_id: null }],
  });
});

test("a registry newer than this binary is refused with one line and left as it is", () => {
  const file = join(dir, "newer.db");
  openSqlite(file, who).close();
  const db = new Database(file);
  db.exec(`INSERT INTO schema_version (version, name, applied_at, applied_by) VALUES (${NEXT}, 'from the future', 'later', 'someone')`);
  db.close();
  let refused: unknown;
  try {
    openSqlite(file, who);
  } catch (e) {
    refused = e;
  }
  expect({
    kind: refused instanceof DecnetError,
    line: refused instanceof DecnetError ? `${refused.message} — ${refused.hint}` : String(refused),
    versions: versions(file).map((v) => v.version),
  }).toEqual({
    kind: true,
    line: `the registry ${file} is at schema version ${NEXT}, newer than this decnet knows (${ALL.length}); it was changed by a newer decnet — run a decnet at least as new as the one that last used it`,
    versions: [...ALL.map((v) => v.version), NEXT],
  });
});

/** bun:sqlite behind the asynchronous driver interface, as Bun.SQL will be. */
function asyncDriver(db: Database): AsyncMigrationDriver {
  const d = sqliteDriver(db, who);
  return {
    async transaction(fn) {
      db.exec("BEGIN IMMEDIATE");
      try {
        const v = await fn();
        db.exec("COMMIT");
        return v;
      } catch (e) {
        db.exec("ROLLBACK");
        throw e;
      }
    },
    current: async () => d.current(),
    apply: async (m) => d.apply(m),
  };
}

test("the asynchronous runner applies the same numbered list, and a failing step leaves the registry where it was", async () => {
  const db = new Database(join(dir, "async.db"), { create: true, strict: true });
  const first = await migrate(asyncDriver(db), sqliteMigrations.slice(0, 1), "async.db");
  const broken = [...sqliteMigrations, { version: NEXT, name: "broken", sql: "CREATE TABLE later (x INTEGER); CREATE TABLE later (x INTEGER);" }];
  let failed = "";
  try {
    await migrate(asyncDriver(db), broken, "async.db");
  } catch (e) {
    failed = String(e);
  }
  const after = db.query<{ v: number }, []>("SELECT MAX(version) AS v FROM schema_version").get()!.v;
  const rest = await migrate(asyncDriver(db), sqliteMigrations, "async.db");
  db.close();
  expect({ first, failed: failed.includes("already exists"), after, rest }).toEqual({ first: { from: 0, to: 1 }, failed: true, after: 1, rest: { from: 1, to: ALL.length } });
});
