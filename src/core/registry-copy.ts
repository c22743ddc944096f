/**
 * `swarm registry migrate --to postgres://…`: a solo operator's sqlite
 * registry copied into PostgreSQL so a team can share it (DESIGN §15). One
 * transaction on the target; rows the target already has are kept as they
 * are (by key, or for the history tables by what makes a row that event),
 * so a second run copies nothing. The sqlite file is read, never changed
 * beyond its own migrations.
 */
import { existsSync } from "node:fs";
import { DecnetError } from "../lib/errors.ts";
import { homePaths } from "../lib/paths.ts";
import { type Db, openDb, type Params } from "./registry-db.ts";
import { redactUrl } from "./registry-pg.ts";

interface Table {
  name: string;
  /** The conflict target for tables with a key; the matching columns for history tables (no key but a serial id). */
  key: string[];
  history?: boolean;
  order: string;
}

// Parents first (rollout_hosts refers to rollouts).
const TABLES: Table[] = [
  { name: "hosts", key: ["name"], order: "name" },
  { name: "certs", key: ["serial"], order: "rowid" },
  { name: "crl_state", key: ["id"], order: "id" },
  { name: "joins", key: ["host"], order: "host" },
  { name: "rollouts", key: ["id"], order: "created_at, id" },
  { name: "rollout_hosts", key: ["rollout_id", "host"], order: "rollout_id, batch, position" },
  { name: "pushes", key: ["host", "kind", "at", "operator", "outcome", "duration_ms", "detail"], history: true, order: "id" },
  { name: "identity_events", key: ["at", "operator", "action", "subject", "detail"], history: true, order: "id" },
];

export interface CopiedTable {
  table: string;
  rows: number;
  copied: number;
}

export interface CopyReport {
  from: string;
  to: string;
  tables: CopiedTable[];
}

async function copyTable(src: Db, dst: Db, t: Table): Promise<CopiedTable> {
  const rows = await src.all<Record<string, unknown>>(`SELECT * FROM ${t.name} ORDER BY ${t.order}`);
  let copied = 0;
  for (const row of rows) {
    const cols = Object.keys(row).filter((c) => !(t.history && c === "id"));
    const p = Object.fromEntries(cols.map((c) => [c, row[c]])) as Params;
    const values = cols.map((c) => `$${c}`).join(", ");
    const sql = t.history
      ? `INSERT INTO ${t.name} (${cols.join(", ")}) SELECT ${values} WHERE NOT EXISTS (SELECT 1 FROM ${t.name} WHERE ${t.key.map((k) => `${k} = $${k}`).join(" AND ")})`
      : `INSERT INTO ${t.name} (${cols.join(", ")}) VALUES (${values}) ON CONFLICT (${t.key.join(", ")}) DO NOTHING`;
    copied += await dst.run(sql, p);
  }
  return { table: t.name, rows: rows.length, copied };
}

export async function copyRegistry(to: string, file = homePaths().db): Promise<CopyReport> {
  if (!/^postgres(ql)?:\/\//i.test(to)) throw new DecnetError("usage", `--to ${redactUrl(to).slice(0, 80)} is not a postgres:// URL`, { exitCode: 2, hint: "give --to postgres://USER[:PASSWORD]@HOST[:PORT]/DBNAME" });
  if (!existsSync(file)) throw new DecnetError("failed", `there is no local registry at ${file} to copy`, { hint: "nothing to migrate; set DECNET_REGISTRY_URL to use the shared registry" });
  const src = openDb(file);
  try {
    const dst = openDb(to);
    try {
      const tables = await dst.tx(async () => {
        const out: CopiedTable[] = [];
        for (const t of TABLES) out.push(await copyTable(src, dst, t));
        return out;
      });
      return { from: src.where, to: dst.where, tables };
    } finally {
      dst.close();
    }
  } finally {
    src.close();
  }
}
