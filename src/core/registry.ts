/**
 * Hosts and push history, in bun:sqlite (~/.decnet/swarm.db) or PostgreSQL
 * (DECNET_REGISTRY_URL) through registry-db.ts; the schemas and their
 * migrations are in registry-schema.ts and registry-pg.ts.
 */
import { DecnetError } from "../lib/errors.ts";
import { os } from "../lib/os-user.ts";
import { type Db, openDb, registryLocation } from "./registry-db.ts";

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

type HostRow = Omit<Host, "sans" | "has_updater" | "agent_port" | "updater_port"> & { sans: string; has_updater: number; agent_port: number | string; updater_port: number | string };

const toHost = (r: HostRow): Host => ({
  ...r, sans: JSON.parse(r.sans) as string[], has_updater: Number(r.has_updater) === 1, agent_port: Number(r.agent_port), updater_port: Number(r.updater_port),
});

export class Registry implements Disposable {
  /** Open to the rollout store (registry-rollouts.ts) and the leases, which share this connection and its transactions. */
  readonly db: Db;
  /** `file`: a sqlite file or a postgres:// URL; DECNET_REGISTRY_URL wins over the default file (registry-db.ts). */
  constructor(file?: string) {
    this.db = openDb(registryLocation(file), () => os.operator());
  }

  async addHost(h: Omit<Host, "decommissioned_at" | "last_release" | "last_result" | "last_pushed_at" | "target">): Promise<void> {
    try {
      await this.db.run(
        `INSERT INTO hosts (name, address, sans, agent_port, updater_port, enrolled_at, has_updater)
         VALUES ($name, $address, $sans, $agent_port, $updater_port, $enrolled_at, $has_updater)`,
        { name: h.name, address: h.address, agent_port: h.agent_port, updater_port: h.updater_port, enrolled_at: h.enrolled_at, sans: JSON.stringify(h.sans), has_updater: h.has_updater ? 1 : 0 },
      );
    } catch (e) {
      if (/UNIQUE|duplicate key/i.test(String(e))) {
        throw duplicateHost(h.name);
      }
      throw e;
    }
  }

  async host(name: string): Promise<Host | null> {
    const r = await this.db.get<HostRow>("SELECT * FROM hosts WHERE name = $name", { name });
    return r ? toHost(r) : null;
  }

  async hosts(): Promise<Host[]> {
    return (await this.db.all<HostRow>("SELECT * FROM hosts ORDER BY name")).map(toHost);
  }

  /** The host now has an updater bundle (`swarm enroll --updater-only`). */
  async setHasUpdater(name: string): Promise<void> {
    await this.db.run("UPDATE hosts SET has_updater = 1 WHERE name = $name", { name });
  }

  /** What the host's updater reported it runs on; unchanged rows are not rewritten. */
  async setTarget(name: string, target: string): Promise<void> {
    await this.db.run("UPDATE hosts SET target = $target WHERE name = $name AND (target IS NULL OR target <> $target)", { name, target });
  }

  async decommission(name: string, at: string): Promise<void> {
    await this.db.run("UPDATE hosts SET decommissioned_at = $at WHERE name = $name AND decommissioned_at IS NULL", { name, at });
  }

  async recordPush(p: Push): Promise<void> {
    await this.db.tx(async () => {
      await this.db.run(
        `INSERT INTO pushes (host, kind, release_id, version, outcome, detail, operator, at, duration_ms, bytes_sent, rollout_id)
         VALUES ($host, $kind, $release_id, $version, $outcome, $detail, $operator, $at, $duration_ms, $bytes_sent, $rollout_id)`,
        {
          host: p.host, kind: p.kind, release_id: p.release_id, version: p.version, outcome: p.outcome, detail: p.detail, operator: p.operator,
          at: p.at, duration_ms: p.duration_ms, bytes_sent: p.bytes_sent, rollout_id: p.rollout_id ?? null,
        },
      );
      await this.db.run(
        `UPDATE hosts SET last_result = $outcome, last_pushed_at = $at,
         last_release = CASE WHEN $ok = 1 THEN $release_id ELSE last_release END WHERE name = $host`,
        { host: p.host, outcome: `${p.kind}: ${p.outcome}`, at: p.at, release_id: p.release_id, ok: p.outcome === "updated" ? 1 : 0 },
      );
    });
  }

  async pushes(host?: string): Promise<Push[]> {
    const sql = `SELECT host, kind, release_id, version, outcome, detail, operator, at, duration_ms, bytes_sent, rollout_id FROM pushes
                 ${host ? "WHERE host = $host" : ""} ORDER BY id`;
    const rows = await this.db.all<Push>(sql, host ? { host } : {});
    return rows.map((r) => ({ ...r, duration_ms: Number(r.duration_ms), bytes_sent: Number(r.bytes_sent) }));
  }

  [Symbol.dispose](): void {
    this.db.close();
  }
}
