/**
 * The rollout store in bun:sqlite: all of the rollout SQL. It shares the
 * Registry's connection, so a host's outcome and its push history row are
 * one transaction.
 */
import type { Registry } from "./registry.ts";
import type { Expect, HostState, Rollout, RolloutHost, RolloutPatch, RolloutState, RolloutStore } from "./rollout/store.ts";

interface RolloutRow {
  id: string;
  created_at: string;
  updated_at: string;
  operator: string;
  state: RolloutState;
  release_id: string;
  release_version: string;
  release_size: number;
  release_source: string;
  release_signer: string | null;
  release_file: string | null;
  settings: string;
  batches: string;
  canaries: number;
  run: number;
  budget_from: number;
  owner: string | null;
  halt_reason: string | null;
}

type HostRow = Omit<RolloutHost, "result"> & { result: string | null };

const PATCHABLE = ["state", "owner", "run", "budget_from", "halt_reason", "release_file"] as const;

export class SqliteRollouts implements RolloutStore {
  constructor(private readonly reg: Registry) {}

  private get db() {
    return this.reg.db;
  }

  async create(r: Rollout): Promise<void> {
    this.db.transaction(() => {
      this.db
        .query(`INSERT INTO rollouts (id, created_at, updated_at, operator, state, release_id, release_version, release_size, release_source,
                release_signer, release_file, settings, batches, canaries, run, budget_from, owner, halt_reason)
                VALUES ($id, $created_at, $updated_at, $operator, $state, $release_id, $release_version, $release_size, $release_source,
                $release_signer, $release_file, $settings, $batches, $canaries, $run, $budget_from, $owner, $halt_reason)`)
        .run({
          id: r.id, created_at: r.created_at, updated_at: r.updated_at, operator: r.operator, state: r.state,
          release_id: r.release.id, release_version: r.release.version, release_size: r.release.size, release_source: r.release.source,
          release_signer: r.release.signer, release_file: r.release_file, settings: JSON.stringify(r.settings), batches: JSON.stringify(r.batches),
          canaries: r.canaries ? 1 : 0, run: r.run, budget_from: r.budget_from, owner: r.owner, halt_reason: r.halt_reason,
        });
      const q = this.db.query(`INSERT INTO rollout_hosts (rollout_id, host, batch, position, state, run, started_at, finished_at, result, note)
                               VALUES ($id, $host, $batch, $position, $state, $run, $started_at, $finished_at, $result, $note)`);
      r.hosts.forEach((h, position) => q.run({ id: r.id, position, ...h, result: h.result ? JSON.stringify(h.result) : null }));
    }).immediate();
  }

  private hosts(id: string): RolloutHost[] {
    return this.db
      .query<HostRow, { id: string }>("SELECT host, batch, state, run, started_at, finished_at, result, note FROM rollout_hosts WHERE rollout_id = $id ORDER BY batch, position")
      .all({ id })
      .map((h) => ({ ...h, result: h.result ? JSON.parse(h.result) : null }));
  }

  private toRollout(r: RolloutRow): Rollout {
    return {
      id: r.id, created_at: r.created_at, updated_at: r.updated_at, operator: r.operator, state: r.state,
      release: { id: r.release_id, version: r.release_version, size: r.release_size, source: r.release_source, signer: r.release_signer },
      release_file: r.release_file, settings: JSON.parse(r.settings), batches: JSON.parse(r.batches), canaries: r.canaries === 1,
      run: r.run, budget_from: r.budget_from, owner: r.owner, halt_reason: r.halt_reason, hosts: this.hosts(r.id),
    };
  }

  async get(id: string): Promise<Rollout | null> {
    const r = this.db.query<RolloutRow, { id: string }>("SELECT * FROM rollouts WHERE id = $id").get({ id });
    return r ? this.toRollout(r) : null;
  }

  async list(limit: number): Promise<Rollout[]> {
    return this.db.query<RolloutRow, { limit: number }>("SELECT * FROM rollouts ORDER BY created_at DESC, id LIMIT $limit").all({ limit }).map((r) => this.toRollout(r));
  }

  async state(id: string): Promise<RolloutState | null> {
    return this.db.query<{ state: RolloutState }, { id: string }>("SELECT state FROM rollouts WHERE id = $id").get({ id })?.state ?? null;
  }

  async transition(id: string, expect: Expect, patch: RolloutPatch, at: string, requeue: HostState[] = []): Promise<boolean> {
    const keys = PATCHABLE.filter((k) => k in patch);
    const set = [...keys.map((k) => `${k} = $${k}`), "updated_at = $at"].join(", ");
    const values = Object.fromEntries(keys.map((k) => [k, patch[k] ?? null]));
    return this.db.transaction(() => {
      const changed = this.db
        .query(`UPDATE rollouts SET ${set} WHERE id = $id AND state = $expect_state AND owner IS $expect_owner AND run = $expect_run`)
        .run({ ...values, at, id, expect_state: expect.state, expect_owner: expect.owner, expect_run: expect.run }).changes === 1;
      if (changed && requeue.length) {
        const q = this.db.query("UPDATE rollout_hosts SET state = 'pending' WHERE rollout_id = $id AND state = $state");
        for (const state of requeue) q.run({ id, state });
      }
      return changed;
    }).immediate();
  }

  async hostStarted(id: string, host: string, run: number, at: string): Promise<void> {
    this.db.query("UPDATE rollout_hosts SET state = 'running', run = $run, started_at = $at, finished_at = NULL WHERE rollout_id = $id AND host = $host").run({ id, host, run, at });
  }

  async hostFinished(id: string, host: string, f: Parameters<RolloutStore["hostFinished"]>[2]): Promise<void> {
    this.db.transaction(() => {
      this.db
        .query("UPDATE rollout_hosts SET state = $state, run = $run, finished_at = $at, result = $result WHERE rollout_id = $id AND host = $host")
        .run({ id, host, state: f.state, run: f.run, at: f.at, result: JSON.stringify(f.result) });
      for (const p of f.pushes) this.reg.recordPush(p);
      this.db.query("UPDATE rollouts SET updated_at = $at WHERE id = $id").run({ id, at: f.at });
    }).immediate();
  }

  async hostNote(id: string, host: string, state: HostState, note: string, at: string): Promise<void> {
    this.db.query("UPDATE rollout_hosts SET state = $state, note = $note, finished_at = $at WHERE rollout_id = $id AND host = $host").run({ id, host, state, note, at });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.reg[Symbol.dispose]();
  }
}
