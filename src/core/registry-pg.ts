/**
 * The registry in PostgreSQL (DESIGN §15): the same numbered migrations as
 * registry-schema.ts in PostgreSQL's dialect, the URL checked and shown with
 * its password hidden, and its failures as one line saying what to check.
 */
import { DecnetError } from "../lib/errors.ts";
import type { Migration } from "./registry-migrate.ts";

/** The URL with any password replaced by ***. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    // Malformed: keep what cannot be a password (no user-info part).
    return url.replace(/\/\/[^@/]*@/, "//***@").slice(0, 200);
  }
}

/** Refuses a DECNET_REGISTRY_URL that is not a usable postgres:// URL. */
export function validatePgUrl(url: string, where: string): void {
  let u: URL | null = null;
  try {
    u = new URL(url);
  } catch {}
  const bad = !u ? "it is not a URL" : !/^postgres(ql)?:$/.test(u.protocol) ? `the scheme is ${u.protocol.replace(/:$/, "")}, not postgres` : !u.hostname ? "it names no host" : !/^\/[^/]+$/.test(u.pathname) ? "it names no database (…/DBNAME)" : null;
  if (bad) {
    throw new DecnetError("failed", `DECNET_REGISTRY_URL ${where} is malformed: ${bad}`, { hint: "use postgres://USER[:PASSWORD]@HOST[:PORT]/DBNAME, or unset it for the local registry" });
  }
}

/** A Bun.SQL failure as one line naming the registry and what to check. */
export function pgError(e: unknown, where: string): unknown {
  if (e instanceof DecnetError) return e;
  const err = e as { code?: string; errno?: string; message?: string };
  const code = String(err.code ?? "");
  const state = String(err.errno ?? "");
  const msg = String(err.message ?? e).split("\n")[0]!.slice(0, 200);
  if (!code.startsWith("ERR_POSTGRES")) return e;
  if (/CONNECTION|TIMEOUT|CLOSED|REFUSED/.test(code) && code !== "ERR_POSTGRES_SERVER_ERROR") {
    return new DecnetError("failed", `cannot reach the registry at ${where} (${msg})`, { hint: "check that PostgreSQL runs there and accepts connections on that address and port" });
  }
  if (state.startsWith("28")) {
    return new DecnetError("failed", `the registry at ${where} refused the login: ${msg}`, { hint: "check the user and password in DECNET_REGISTRY_URL and the server's pg_hba.conf" });
  }
  if (state === "3D000") {
    return new DecnetError("failed", `the registry at ${where}: ${msg}`, { hint: "create the database (createdb) or fix the name in DECNET_REGISTRY_URL" });
  }
  if (state === "42501") {
    return new DecnetError("failed", `the registry at ${where}: ${msg}`, { hint: "the user needs rights to create decnet's tables there once (GRANT CREATE ON SCHEMA public), or let an owner run decnet first" });
  }
  return new DecnetError("failed", `the registry at ${where}: ${msg}`, { hint: "check the server's log" });
}

/** The PostgreSQL side of registry-schema.ts's list: the same versions and names. */
export const pgMigrations: readonly Migration[] = [
  {
    version: 1,
    name: "hosts, pushes, identity",
    sql: `
CREATE TABLE hosts (
  name TEXT PRIMARY KEY, address TEXT NOT NULL, sans TEXT NOT NULL,
  agent_port INTEGER NOT NULL, updater_port INTEGER NOT NULL, enrolled_at TEXT NOT NULL,
  has_updater INTEGER NOT NULL, decommissioned_at TEXT,
  last_release TEXT, last_result TEXT, last_pushed_at TEXT
);
CREATE TABLE pushes (
  id BIGSERIAL PRIMARY KEY, host TEXT NOT NULL, kind TEXT NOT NULL,
  release_id TEXT, version TEXT, outcome TEXT NOT NULL, detail TEXT NOT NULL,
  operator TEXT NOT NULL, at TEXT NOT NULL, duration_ms INTEGER NOT NULL, bytes_sent BIGINT NOT NULL
);
CREATE TABLE certs (
  serial TEXT PRIMARY KEY, role TEXT NOT NULL, name TEXT NOT NULL, cn TEXT NOT NULL, spki TEXT NOT NULL,
  not_before TEXT NOT NULL, not_after TEXT NOT NULL, issued_at TEXT NOT NULL, issued_by TEXT NOT NULL,
  revoked_at TEXT, revoked_by TEXT, revoke_reason TEXT,
  seq BIGSERIAL
);
CREATE INDEX certs_by_name ON certs (name, role);
CREATE TABLE crl_state (
  id INTEGER PRIMARY KEY CHECK (id = 1), number INTEGER NOT NULL, this_update TEXT NOT NULL, next_update TEXT NOT NULL
);
CREATE TABLE joins (
  host TEXT PRIMARY KEY, secret TEXT, created_at TEXT NOT NULL, expires_at TEXT NOT NULL,
  state TEXT NOT NULL, bound_keys TEXT, updated_at TEXT NOT NULL
);
CREATE TABLE identity_events (
  id BIGSERIAL PRIMARY KEY, at TEXT NOT NULL, operator TEXT NOT NULL,
  action TEXT NOT NULL, subject TEXT NOT NULL, detail TEXT NOT NULL
);`,
  },
  {
    version: 2,
    name: "rollouts",
    sql: `
CREATE TABLE rollouts (
  id TEXT PRIMARY KEY, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, operator TEXT NOT NULL,
  state TEXT NOT NULL,
  release_id TEXT NOT NULL, release_version TEXT NOT NULL, release_size BIGINT NOT NULL,
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
    sql: `
ALTER TABLE joins ADD COLUMN address TEXT;
ALTER TABLE joins ADD COLUMN sans TEXT;`,
  },
  {
    version: 4,
    name: "leases, shared releases",
    sql: `
CREATE TABLE leases (
  host TEXT PRIMARY KEY, holder TEXT NOT NULL, rollout_id TEXT, operator TEXT NOT NULL,
  since TEXT NOT NULL, heartbeat TEXT NOT NULL
);
CREATE TABLE rollout_releases (
  rollout_id TEXT PRIMARY KEY, release_id TEXT NOT NULL, size BIGINT NOT NULL, data BYTEA NOT NULL, stored_at TEXT NOT NULL
);`,
  },
  {
    version: 5,
    name: "host targets",
    sql: `ALTER TABLE hosts ADD COLUMN target TEXT;`,
  },
];
