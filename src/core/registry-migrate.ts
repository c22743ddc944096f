/**
 * Numbered registry migrations, whatever the backend: which ones a registry
 * still needs, the one-line refusal when it is newer than this binary, and
 * the runner — synchronous for bun:sqlite, asynchronous for Bun.SQL.
 */
import { DecnetError } from "../lib/errors.ts";

/**
 * One step of the schema. Every backend has the same numbered list (the same
 * versions and names, its own SQL): a registry at version N has the same
 * tables whichever backend holds it.
 */
export interface Migration {
  version: number;
  name: string;
  /** Statements in this backend's dialect, run in one transaction with the version row. */
  sql: string;
}

/** The migrations `list` holds past `current`, in order; refuses a registry newer than the list. */
export function pendingMigrations(current: number, list: readonly Migration[], where: string): Migration[] {
  list.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration list out of order at ${m.version} (${m.name})`);
  });
  const known = list.length;
  if (current > known) {
    throw new DecnetError("failed", `the registry ${where} is at schema version ${current}, newer than this decnet knows (${known}); it was changed by a newer decnet`, {
      hint: "run a decnet at least as new as the one that last used it",
    });
  }
  return list.slice(current);
}

/** A registry's side of the runner, for a backend whose calls return at once (bun:sqlite). */
export interface SyncMigrationDriver {
  /** Runs `fn` in one write transaction that holds the migration lock (sqlite: BEGIN IMMEDIATE). */
  transaction<T>(fn: () => T): T;
  /** Creates schema_version when it is missing, and returns the highest version applied (0 for none). */
  current(): number;
  /** Runs the migration's statements and records its version, inside the transaction. */
  apply(m: Migration): void;
}

/** The same, for a backend whose calls are promises (Bun.SQL for PostgreSQL, DESIGN §15). */
export interface AsyncMigrationDriver {
  /** Runs `fn` in one transaction that holds the migration lock (PostgreSQL: pg_advisory_xact_lock). */
  transaction<T>(fn: () => Promise<T>): Promise<T>;
  current(): Promise<number>;
  apply(m: Migration): Promise<void>;
}

export interface Migrated {
  from: number;
  to: number;
}

/**
 * Brings a registry up to the newest migration in one transaction under the
 * lock, so two masters starting at once apply each migration once, and a
 * failed step leaves the registry where it was.
 */
export function migrateSync(d: SyncMigrationDriver, list: readonly Migration[], where: string): Migrated {
  return d.transaction(() => {
    const from = d.current();
    const todo = pendingMigrations(from, list, where);
    for (const m of todo) d.apply(m);
    return { from, to: from + todo.length };
  });
}

/** migrateSync for an asynchronous backend: the same steps, awaited. */
export async function migrate(d: AsyncMigrationDriver, list: readonly Migration[], where: string): Promise<Migrated> {
  return d.transaction(async () => {
    const from = await d.current();
    const todo = pendingMigrations(from, list, where);
    for (const m of todo) await d.apply(m);
    return { from, to: from + todo.length };
  });
}
