/**
 * The registry's schema in bun:sqlite, as numbered migrations, and opening a
 * registry file: pragmas, then every migration it lacks. Migration 1 is the
 * schema decnet had before migrations (so a registry made then is adopted
 * as it is); a PostgreSQL backend keeps the same numbers with its own SQL.
 */
import { Database } from "bun:sqlite";
import { dirname } from "node:path";
import { ensurePrivateDir } from "../lib/paths.ts";
import { type Migration, migrateSync, type SyncMigrationDriver } from "./registry-migrate.ts";

export const sqliteMigrations: readonly Migration[] = [
  {
    version: 1,
    name: "hosts, pushes, identity",
    // IF NOT EXISTS: a registry from before migrations already has some of these.
    sql: `
CREATE TABLE IF NOT EXISTS hosts (
  name TEXT PRIMARY KEY, address TEXT NOT NULL, sans TEXT NOT NULL,
  agent_port INTEGER NOT NULL, updater_port INTEGER NOT NULL, enrolled_at TEXT NOT NULL,
  has_updater INTEGER NOT NULL, decommissioned_at TEXT,
  last_release TEXT, last_result TEXT, last_pushed_at TEXT
);
CREATE TABLE IF NOT EXISTS pushes (
  id INTEGER PRIMARY KEY AUTOINCREMENT, host TEXT NOT NULL, kind TEXT NOT NULL,
  release_id TEXT, version TEXT, outcome TEXT NOT NULL, detail TEXT NOT NULL,
  operator TEXT NOT NULL, at TEXT NOT NULL, duration_ms INTEGER NOT NULL, bytes_sent INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS certs (
  serial TEXT PRIMARY KEY, role TEXT NOT NULL, name TEXT NOT NULL, cn TEXT NOT NULL, spki TEXT NOT NULL,
  not_before TEXT NOT NULL, not_after TEXT NOT NULL, issued_at TEXT NOT NULL, issued_by TEXT NOT NULL,
  revoked_at TEXT, revoked_by TEXT, revoke_reason TEXT
);
CREATE INDEX IF NOT EXISTS certs_by_name ON certs (name, role);
CREATE TABLE IF NOT EXISTS crl_state (
  id INTEGER PRIMARY KEY CHECK (id = 1), number INTEGER NOT NULL, this_update TEXT NOT NULL, next_update TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS joins (
  host TEXT PRIMARY KEY, secret TEXT, created_at TEXT NOT NULL, expires_at TEXT NOT NULL,
  state TEXT NOT NULL, bound_keys TEXT, updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS identity_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, operator TEXT NOT NULL,
  action TEXT NOT NULL, subject TEXT NOT NULL, detail TEXT NOT NULL
);`,
  },
  {
    version: 2,
    name: "rollouts",
    // JSON columns are TEXT, times ISO-8601 TEXT: the same in PostgreSQL.
    sql: `
CREATE TABLE rollouts (
  id TEXT PRIMARY KEY, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, operator TEXT NOT NULL,
  state TEXT NOT NULL,
  release_id TEXT NOT NULL, release_version TEXT NOT NULL, release_size INTEGER NOT NULL,
  release_source TEXT NOT NULL, release_signer TEXT, release_file TEXT,
  settings TEXT NOT NULL, batches TEXT NOT NULL, canaries INTEGER NOT NULL,
  run INTEGER NOT NULL, budget_from INTEGER NOT NULL, owner TEXT, halt_reason TEXT
);
CREATE INDEX rollouts_by_created ON rollouts (created_at);
CREATE TABLE rollout_hosts (
  rollout_id TEXT NOT NULL REFERENCES rollouts (id), host TEXT NOT NULL,
  batch INTEGER NOT NULL, position INTEGER NOT NULL, state TEXT NOT NULL,
  run INTEGER, started_at TEXT, finished_at TEXT, result TEXT, note TEXT,
  PRIMARY KEY (rollout_id, host)
);
ALTER TABLE pushes ADD COLUMN rollout_id TEXT;`,
  },
  {
    version: 3,
    name: "join addresses",
    // Where `swarm join H` reaches a joining worker, and the SANs its certificates get.
    sql: `
ALTER TABLE joins ADD COLUMN address TEXT;
ALTER TABLE joins ADD COLUMN sans TEXT;`,
  },
  {
    version: 4,
    name: "leases, shared releases",
    // A lease per host (who holds it for which rollout, since, last heartbeat); the
    // rollout's release kept in the registry itself when other masters share it.
    sql: `
CREATE TABLE leases (
  host TEXT PRIMARY KEY, holder TEXT NOT NULL, rollout_id TEXT, operator TEXT NOT NULL,
  since TEXT NOT NULL, heartbeat TEXT NOT NULL
);
CREATE TABLE rollout_releases (
  rollout_id TEXT PRIMARY KEY, release_id TEXT NOT NULL, size INTEGER NOT NULL, data BLOB NOT NULL, stored_at TEXT NOT NULL
);`,
  },
  {
    version: 5,
    name: "host targets",
    // The CPU a host's updater reports (DESIGN §16): learned on first contact, refreshed on every push.
    sql: `
ALTER TABLE hosts ADD COLUMN target TEXT;`,
  },
];

/** The runner's side for bun:sqlite. */
export function sqliteDriver(db: Database, who: () => string): SyncMigrationDriver {
  return {
    // IMMEDIATE: a second master opening the same file waits here (busy_timeout) instead of racing.
    transaction: (fn) => db.transaction(fn).immediate(),
    current() {
      db.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL, applied_by TEXT NOT NULL)");
      return db.query<{ v: number | null }, []>("SELECT MAX(version) AS v FROM schema_version").get()?.v ?? 0;
    },
    apply(m) {
      db.exec(m.sql);
      db.query("INSERT INTO schema_version (version, name, applied_at, applied_by) VALUES ($version, $name, $at, $by)")
        .run({ version: m.version, name: m.name, at: new Date().toISOString(), by: who() });
    },
  };
}

/** Opens (creating) a registry file and brings its schema up to date; refuses a newer one. */
export function openSqlite(file: string, who: () => string): Database {
  ensurePrivateDir(dirname(file));
  const db = new Database(file, { create: true, strict: true });
  try {
    // busy_timeout first: setting the journal mode waits for a lock another `decnet` may hold.
    db.exec("PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;");
    migrateSync(sqliteDriver(db, who), sqliteMigrations, file);
    return db;
  } catch (e) {
    db.close();
    throw e;
  }
}
