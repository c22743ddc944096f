/**
 * The rollout store, on either backend: all of the rollout SQL. It shares the
 * Registry's connection, so a host's outcome and its push history row are
 * one transaction.
 */
import { renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { ensurePrivateDir } from "../lib/paths.ts";
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

export class RegistryRollouts implements RolloutStore {
  constructor(readonly reg: Registry) {}

  private get db() {
    return this.reg.db;
  }

  async create(r: Rollout): Promise<void> {
    await this.db.tx(async () => {
      await this.db.run(
        `INSERT INTO rollouts (id, created_at, updated_at, operator, state, release_id, release_version, release_size, release_source,
         release_signer, release_file, settings, batches, canaries, run, budget_from, owner, halt_reason)
         VALUES ($id, $created_at, $updated_at, $operator, $state, $release_id, $release_version, $release_size, $release_source,
         $release_signer, $release_file, $settings, $batches, $canaries, $run, $budget_from, $owner, $halt_reason)`,
        {
          id: r.id, created_at: r.created_at, updated_at: r.updated_at, operator: r.operator, state: r.state,
          release_id: r.release.id, release_version: r.release.version, release_size: r.release.size, release_source: r.release.source,
          release_signer: r.release.signer, release_file: r.release_file, settings: JSON.stringify(r.settings), batches: JSON.stringify(r.batches),
          canaries: r.canaries ? 1 : 0, run: r.run, budget_from: r.budget_from, owner: r.owner, halt_reason: r.halt_reason,
        },
      );
      for (const [position, h] of r.hosts.entries()) {
        await this.db.run(
          `INSERT INTO rollout_hosts (rollout_id, host, batch, position, state, run, started_at, finished_at, result, note)
           VALUES ($id, $host, $batch, $position, $state, $run, $started_at, $finished_at, $result, $note)`,
          { id: r.id, position, host: h.host, batch: h.batch, state: h.state, run: h.run, started_at: h.started_at, finished_at: h.finished_at, note: h.note, result: h.result ? JSON.stringify(h.result) : null },
        );
      }
    });
  }

  private async hosts(id: string): Promise<RolloutHost[]> {
    const rows = await this.db.all<HostRow>("SELECT host, batch, state, run, started_at, finished_at, result, note FROM rollout_hosts WHERE rollout_id = $id ORDER BY batch, position", { id });
    return rows.map((h) => ({ ...h, result: h.result ? JSON.parse(h.result) : null }));
  }

  private async toRollout(r: RolloutRow): Promise<Rollout> {
    return {
      id: r.id, created_at: r.created_at, updated_at: r.updated_at, operator: r.operator, state: r.state,
      release: { id: r.release_id, version: r.release_version, size: Number(r.release_size), source: r.release_source, signer: r.release_signer },
      release_file: r.release_file, settings: JSON.parse(r.settings), batches: JSON.parse(r.batches), canaries: Number(r.canaries) === 1,
      run: r.run, budget_from: r.budget_from, owner: r.owner, halt_reason: r.halt_reason, hosts: await this.hosts(r.id),
    };
  }

  async get(id: string): Promise<Rollout | null> {
    const r = await this.db.get<RolloutRow>("SELECT * FROM rollouts WHERE id = $id", { id });
    return r ? await this.toRollout(r) : null;
  }

  async list(limit: number): Promise<Rollout[]> {
    const rows = await this.db.all<RolloutRow>("SELECT * FROM rollouts ORDER BY created_at DESC, id LIMIT $limit", { limit });
    return await Promise.all(rows.map((r) => this.toRollout(r)));
  }

  async state(id: string): Promise<RolloutState | null> {
    return (await this.db.get<{ state: RolloutState }>("SELECT state FROM rollouts WHERE id = $id", { id }))?.state ?? null;
  }

  async transition(id: string, expect: Expect, patch: RolloutPatch, at: string, requeue: HostState[] = []): Promise<boolean> {
    const keys = PATCHABLE.filter((k) => k in patch);
    const set = [...keys.map((k) => `${k} = $${k}`), "updated_at = $at"].join(", ");
    const values = Object.fromEntries(keys.map((k) => [k, patch[k] ?? null]));
    return await this.db.tx(async () => {
      const changed =
        (await this.db.run(`UPDATE rollouts SET ${set} WHERE id = $id AND state = $expect_state AND owner IS NOT DISTINCT FROM $expect_owner AND run = $expect_run`, {
          ...values, at, id, expect_state: expect.state, expect_owner: expect.owner, expect_run: expect.run,
        })) === 1;
      if (changed) {
        for (const state of requeue) await this.db.run("UPDATE rollout_hosts SET state = 'pending' WHERE rollout_id = $id AND state = $state", { id, state });
      }
      return changed;
    });
  }

  async hostStarted(id: string, host: string, run: number, at: string): Promise<void> {
    await this.db.run("UPDATE rollout_hosts SET state = 'running', run = $run, started_at = $at, finished_at = NULL WHERE rollout_id = $id AND host = $host", { id, host, run, at });
  }

  async hostFinished(id: string, host: string, f: Parameters<RolloutStore["hostFinished"]>[2]): Promise<void> {
    await this.db.tx(async () => {
      await this.db.run("UPDATE rollout_hosts SET state = $state, run = $run, finished_at = $at, result = $result WHERE rollout_id = $id AND host = $host", {
        id, host, state: f.state, run: f.run, at: f.at, result: JSON.stringify(f.result),
      });
      for (const p of f.pushes) await this.reg.recordPush(p);
      await this.db.run("UPDATE rollouts SET updated_at = $at WHERE id = $id", { id, at: f.at });
    });
  }

  async hostNote(id: string, host: string, state: HostState, note: string, at: string): Promise<void> {
    await this.db.run("UPDATE rollout_hosts SET state = $state, note = $note, finished_at = $at WHERE rollout_id = $id AND host = $host", { id, host, state, note, at });
  }

  async keepShared(id: string, releaseId: string, file: () => Promise<string>): Promise<void> {
    if (!this.db.shared) return;
    const data = new Uint8Array(await Bun.file(await file()).arrayBuffer());
    await this.db.run(
      `INSERT INTO rollout_releases (rollout_id, release_id, size, data, stored_at) VALUES ($id, $release_id, $size, $data, $at)
       ON CONFLICT (rollout_id) DO NOTHING`,
      { id, release_id: releaseId, size: data.byteLength, data, at: new Date().toISOString() },
    );
  }

  async fetchShared(id: string, file: string): Promise<boolean> {
    if (!this.db.shared) return false;
    const row = await this.db.get<{ data: Uint8Array; size: number | string }>("SELECT data, size FROM rollout_releases WHERE rollout_id = $id", { id });
    if (!row || row.data.byteLength !== Number(row.size)) return false;
    // Staged and renamed: a half-written file is never taken for the release (cachedRelease checks its id).
    ensurePrivateDir(dirname(file));
    const part = `${file}.part`;
    writeFileSync(part, row.data, { mode: 0o600 });
    renameSync(part, file);
    return true;
  }

  async dropShared(id: string): Promise<void> {
    // The rollout's release and its other targets' (kept-release.sharedKey: `ID.TARGET`); ids are hex, so no LIKE wildcard in them.
    if (this.db.shared) await this.db.run("DELETE FROM rollout_releases WHERE rollout_id = $id OR rollout_id LIKE $others", { id, others: `${id}.%` });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.reg[Symbol.dispose]();
  }
}
