/**
 * Hosts and push history in bun:sqlite (~/.decnet/swarm.db); the schema and
 * its migrations are in registry-schema.ts.
 */
import type { Database } from "bun:sqlite";
import { DecnetError } from "../lib/errors.ts";
import { os } from "../lib/os-user.ts";
import { homePaths } from "../lib/paths.ts";
import { openSqlite } from "./registry-schema.ts";

export interface Host {
  name: string;
  address: string;
  sans: string[];
  agent_port: number;
  updater_port: number;
  enrolled_at: string;
  has_updater: boolean;
  decommissioned_at: string | null;
  last_release: string | null;
  last_result: string | null;
  last_pushed_at: string | null;
  /** `linux-x64` or `linux-arm64` as its updater last reported (DESIGN §16); null before first contact. */
  target?: string | null;
}

export interface Push {
  host: string;
  kind: "update" | "update-self" | "rollback";
  release_id: string | null;
  version: string | null;
  outcome: string;
  detail: string;
  operator: string;
  at: string;
  duration_ms: number;
  bytes_sent: number;
  /** The rollout this push was part of (every `swarm update` is one). */
  rollout_id?: string | null;
}


export function duplicateHost(name: string): DecnetError {
  return new DecnetError("failed", `host ${name} is already enrolled`, { hint: "pick another --host name (see `decnet swarm list`)" });
}

type HostRow = Omit<Host, "sans" | "has_updater"> & { sans: string; has_updater: number };

const toHost = (r: HostRow): Host => ({ ...r, sans: JSON.parse(r.sans) as string[], has_updater: r.has_updater === 1 });

export class Registry implements Disposable {
  /** Open to the rollout store (registry-rollouts.ts), which shares this connection and its transactions. */
  readonly db: Database;
  constructor(file = homePaths().db) {
    this.db = openSqlite(file, () => os.operator());
  }

  addHost(h: Omit<Host, "decommissioned_at" | "last_release" | "last_result" | "last_pushed_at" | "target">): void {
    try {
      this.db
        .query(`INSERT INTO hosts (name, address, sans, agent_port, updater_port, enrolled_at, has_updater)
                VALUES ($name, $address, $sans, $agent_port, $updater_port, $enrolled_at, $has_updater)`)
        .run({ ...h, sans: JSON.stringify(h.sans), has_updater: h.has_updater ? 1 : 0 });
    } catch (e) {
      if (String(e).includes("UNIQUE")) {
        throw duplicateHost(h.name);
      }
      throw e;
    }
  }

  host(name: string): Host | null {
    const r = this.db.query<HostRow, { name: string }>("SELECT * FROM hosts WHERE name = $name").get({ name });
    return r ? toHost(r) : null;
  }

  hosts(): Host[] {
    return this.db.query<HostRow, []>("SELECT * FROM hosts ORDER BY name").all().map(toHost);
  }

  /** The host now has an updater bundle (`swarm enroll --updater-only`). */
  setHasUpdater(name: string): void {
    this.db.query("UPDATE hosts SET has_updater = 1 WHERE name = $name").run({ name });
  }

  /** What the host's updater reported it runs on; unchanged rows are not rewritten. */
  setTarget(name: string, target: string): void {
    this.db.query("UPDATE hosts SET target = $target WHERE name = $name AND target IS NOT $target").run({ name, target });
  }

  decommission(name: string, at: string): void {
    this.db.query("UPDATE hosts SET decommissioned_at = $at WHERE name = $name AND decommissioned_at IS NULL").run({ name, at });
  }

  recordPush(p: Push): void {
    const tx = this.db.transaction(() => {
      this.db
        .query(`INSERT INTO pushes (host, kind, release_id, version, outcome, detail, operator, at, duration_ms, bytes_sent, rollout_id)
                VALUES ($host, $kind, $release_id, $version, $outcome, $detail, $operator, $at, $duration_ms, $bytes_sent, $rollout_id)`)
        .run({ ...p, rollout_id: p.rollout_id ?? null });
      this.db
        .query(`UPDATE hosts SET last_result = $outcome, last_pushed_at = $at,
                last_release = CASE WHEN $ok THEN $release_id ELSE last_release END WHERE name = $host`)
        .run({ host: p.host, outcome: `${p.kind}: ${p.outcome}`, at: p.at, release_id: p.release_id, ok: p.outcome === "updated" ? 1 : 0 });
    });
    tx();
  }

  pushes(host?: string): Push[] {
    const sql = `SELECT host, kind, release_id, version, outcome, detail, operator, at, duration_ms, bytes_sent FROM pushes
                 ${host ? "WHERE host = $host" : ""} ORDER BY id`;
    return host ? this.db.query<Push, { host: string }>(sql).all({ host }) : this.db.query<Push, []>(sql).all();
  }

  [Symbol.dispose](): void {
    this.db.close();
  }
}
