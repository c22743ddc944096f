/**
 * The registry's connection, whichever backend holds it (DESIGN §15): one
 * asynchronous interface over bun:sqlite (the default ~/.decnet/swarm.db)
 * and Bun.SQL (DECNET_REGISTRY_URL=postgres://…). Queries are written once
 * with `$name` parameters; PostgreSQL gets them numbered. A transaction
 * carries itself through `await`s (AsyncLocalStorage), so a store's methods
 * called inside `tx` join it without being handed a connection.
 */
import type { Database } from "bun:sqlite";
import { AsyncLocalStorage } from "node:async_hooks";
import { env } from "../lib/env.ts";
import { homePaths } from "../lib/paths.ts";
import { os } from "../lib/os-user.ts";
import { type Migration, migrate, type AsyncMigrationDriver } from "./registry-migrate.ts";
import { openSqlite } from "./registry-schema.ts";
import { pgError, pgMigrations, redactUrl, validatePgUrl } from "./registry-pg.ts";

export type Params = Record<string, string | number | boolean | null | Uint8Array | undefined>;

export interface Db {
  readonly dialect: "sqlite" | "postgres";
  /** The file, or the URL with its password hidden: for messages. */
  readonly where: string;
  /** Whether other masters may share it (PostgreSQL): leases and the rollout's release kept in it matter then. */
  readonly shared: boolean;
  all<T>(sql: string, p?: Params): Promise<T[]>;
  get<T>(sql: string, p?: Params): Promise<T | null>;
  /** Runs a statement; the number of rows it changed. */
  run(sql: string, p?: Params): Promise<number>;
  /** `fn` in one write transaction (sqlite: BEGIN IMMEDIATE); nested calls join the outer one. */
  tx<T>(fn: () => Promise<T>): Promise<T>;
  close(): void;
}

/** Where the registry is: a postgres:// URL (given, or DECNET_REGISTRY_URL), else the sqlite file. */
export function registryLocation(file?: string): string {
  if (file && /^postgres(ql)?:/i.test(file)) return file;
  const url = env("DECNET_REGISTRY_URL");
  if (url) return url;
  return file ?? homePaths().db;
}

export const isPgLocation = (loc: string) => /^[a-z][a-z0-9+.-]*:\/\//i.test(loc);

/** Opens the registry at `loc` (registryLocation) and brings its schema up to date. */
export function openDb(loc = registryLocation(), who: () => string = () => os.operator()): Db {
  // A DECNET_REGISTRY_URL that is no URL is refused as one, never taken for a file name.
  const pg = isPgLocation(loc) || (loc !== "" && loc === env("DECNET_REGISTRY_URL"));
  return pg ? PgDb.open(loc, who) : new SqliteDb(openSqlite(loc, who), loc);
}

type Held = "lock" | "tx";

class SqliteDb implements Db {
  readonly dialect = "sqlite" as const;
  readonly shared = false;
  private queue: Promise<void> = Promise.resolve();
  // One connection: a statement from another task must not land inside an open transaction.
  private readonly held = new AsyncLocalStorage<Held>();
  constructor(
    private readonly db: Database,
    readonly where: string,
  ) {}

  private async exclusive<T>(kind: Held, fn: () => Promise<T> | T): Promise<T> {
    if (this.held.getStore()) return await fn();
    let release!: () => void;
    const prev = this.queue;
    this.queue = new Promise<void>((r) => (release = r));
    await prev;
    try {
      return await this.held.run(kind, fn);
    } finally {
      release();
    }
  }

  all<T>(sql: string, p: Params = {}): Promise<T[]> {
    return this.exclusive("lock", () => this.db.query(sql).all(p as never) as T[]);
  }

  get<T>(sql: string, p: Params = {}): Promise<T | null> {
    return this.exclusive("lock", () => (this.db.query(sql).get(p as never) as T | null) ?? null);
  }

  run(sql: string, p: Params = {}): Promise<number> {
    return this.exclusive("lock", () => this.db.query(sql).run(p as never).changes);
  }

  tx<T>(fn: () => Promise<T>): Promise<T> {
    if (this.held.getStore() === "tx") return fn();
    return this.exclusive("tx", async () => {
      this.db.exec("BEGIN IMMEDIATE");
      try {
        const r = await fn();
        this.db.exec("COMMIT");
        return r;
      } catch (e) {
        this.db.exec("ROLLBACK");
        throw e;
      }
    });
  }

  close(): void {
    this.db.close();
  }
}

/** `$name` parameters numbered for PostgreSQL (the same name, the same number). */
export function numbered(sql: string, p: Params): [string, unknown[]] {
  const names: string[] = [];
  const text = sql.replace(/\$([a-z_][a-z0-9_]*)/gi, (_, name: string) => {
    if (!(name in p)) throw new Error(`query parameter $${name} not given`);
    let i = names.indexOf(name);
    if (i < 0) i = names.push(name) - 1;
    return `$${i + 1}`;
  });
  return [text, names.map((n) => p[n] ?? null)];
}

type Sql = InstanceType<typeof Bun.SQL>;

interface Pool {
  sql: Sql;
  users: number;
  ready: Promise<void>;
}

/** One pool per URL per process, closed when its last user closes; the schema checked once per pool. */
const pools = new Map<string, Pool>();

class PgDb implements Db {
  readonly dialect = "postgres" as const;
  readonly shared = true;
  private readonly inTx = new AsyncLocalStorage<Sql>();
  private closed = false;
  private constructor(
    private readonly url: string,
    private readonly pool: Pool,
    readonly where: string,
  ) {}

  static open(url: string, who: () => string): PgDb {
    const where = redactUrl(url);
    validatePgUrl(url, where);
    let pool = pools.get(url);
    if (!pool) {
      const sql = new Bun.SQL(url, { max: 4, connectionTimeout: 10, idleTimeout: 30 });
      const p: Pool = { sql, users: 0, ready: Promise.resolve() };
      p.ready = migrate(pgDriver(sql, who), pgMigrations, where).then(
        () => {},
        (e) => Promise.reject(pgError(e, where)),
      );
      // Seen by the first query; never an unhandled rejection in between.
      p.ready.catch(() => {});
      pools.set(url, p);
      pool = p;
    }
    pool.users++;
    return new PgDb(url, pool, where);
  }

  private async q(): Promise<Sql> {
    await this.pool.ready;
    return this.inTx.getStore() ?? this.pool.sql;
  }

  private async exec(sql: string, p: Params): Promise<{ rows: unknown[]; count: number }> {
    const [text, values] = numbered(sql, p);
    const conn = await this.q();
    try {
      const r = (await conn.unsafe(text, values as never[])) as unknown as unknown[] & { count: number };
      return { rows: [...r], count: r.count ?? 0 };
    } catch (e) {
      throw pgError(e, this.where);
    }
  }

  async all<T>(sql: string, p: Params = {}): Promise<T[]> {
    return (await this.exec(sql, p)).rows as T[];
  }

  async get<T>(sql: string, p: Params = {}): Promise<T | null> {
    return ((await this.exec(sql, p)).rows[0] as T | undefined) ?? null;
  }

  async run(sql: string, p: Params = {}): Promise<number> {
    return (await this.exec(sql, p)).count;
  }

  async tx<T>(fn: () => Promise<T>): Promise<T> {
    if (this.inTx.getStore()) return fn();
    await this.pool.ready;
    try {
      return (await this.pool.sql.begin((t) => this.inTx.run(t as unknown as Sql, fn))) as T;
    } catch (e) {
      throw pgError(e, this.where);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (--this.pool.users > 0) return;
    pools.delete(this.url);
    void this.pool.sql.close().catch(() => {});
  }
}

/** The migration runner's side for PostgreSQL: the lock is a transaction-scoped advisory lock. */
function pgDriver(sql: Sql, who: () => string): AsyncMigrationDriver {
  const inTx = new AsyncLocalStorage<Sql>();
  const c = () => inTx.getStore() ?? sql;
  return {
    transaction: (fn) =>
      sql.begin(async (t) => {
        // Two masters starting at once: the second waits here, then finds nothing to do.
        await t.unsafe("SELECT pg_advisory_xact_lock(7310575183) AS locked");
        return inTx.run(t as unknown as Sql, fn);
      }) as Promise<never>,
    async current() {
      // Created only when missing: a user without CREATE rights can still use a registry that is up to date.
      const [{ t }] = (await c().unsafe("SELECT to_regclass('schema_version') IS NOT NULL AS t")) as unknown as [{ t: boolean }];
      if (!t) await c().unsafe("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL, applied_by TEXT NOT NULL)");
      const [{ v }] = (await c().unsafe("SELECT MAX(version) AS v FROM schema_version")) as unknown as [{ v: number | null }];
      return v ?? 0;
    },
    async apply(m: Migration) {
      await c().unsafe(m.sql);
      await c().unsafe("INSERT INTO schema_version (version, name, applied_at, applied_by) VALUES ($1, $2, $3, $4)", [m.version, m.name, new Date().toISOString(), who()]);
    },
  };
}
