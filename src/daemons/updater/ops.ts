/**
 * The updater's operations on the agent's release set, each journalled step
 * by step: update (stage → check → commit → flip → restart → probe, or flip
 * back), rollback (swap current and previous), and recovery after a crash.
 */
import type { ProbeTranscript } from "../../protocol/common.ts";
import type { RolledBackDetail, SwitchResponse } from "../../protocol/updater.ts";
import type { ResolvedUpdaterConfig } from "../../lib/config.ts";
import { DecnetError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import type { InstallPaths } from "../../lib/paths.ts";
import { isAlive } from "../../lib/procfs.ts";
import { timeouts } from "../../lib/timeouts.ts";
import { localHealth } from "../../lib/control-socket.ts";
import { commit, installCheck } from "./install.ts";
import { clearJournal, type Journal, readJournal, writeJournal } from "./journal.ts";
import { probe } from "./probe.ts";
import { Slots } from "./slots.ts";
import type { Staged } from "./stage.ts";
import type { Supervisor } from "./supervisor.ts";

export interface OpsDeps {
  cfg: ResolvedUpdaterConfig;
  paths: InstallPaths;
  sup: Supervisor;
  log: Logger;
  now?: () => Date;
}

export class AgentOps {
  readonly slots: Slots;
  constructor(private d: OpsDeps) {
    this.slots = new Slots(d.paths);
  }

  private journal(j: Omit<Journal, "started_at">, started: string): void {
    writeJournal(this.d.paths, { ...j, started_at: started });
  }

  /** Restart the agent on whatever `current` is and probe it for `release`. */
  private async restartAndProbe(release: string | null): Promise<{ pid: number | null; t: ProbeTranscript }> {
    const { pid, logOffset } = await this.d.sup.restart();
    const t = await probe({ sock: this.d.paths.agentSock, release, pid, deadlineMs: timeouts.probe(), logTail: () => this.d.sup.logSince(logOffset) });
    return { pid, t };
  }

  private versionOf(id: string): string {
    return this.slots.manifest(id)?.version ?? "?";
  }

  /** `stage` turns the upload (full or delta) into a verified staging dir. */
  async update(stage: () => Promise<Staged>): Promise<SwitchResponse> {
    const started = (this.d.now?.() ?? new Date()).toISOString();
    const from = this.slots.current();
    const prev = this.slots.previous();
    this.journal({ op: "update", phase: "staging", from, prev, target: null, pid: null }, started);
    const at = { start: performance.now(), staged: 0, checked: 0, restarted: 0 };
    const ms = (a: number, b: number) => Math.round(b - a);
    try {
      const staged = await stage();
      at.staged = performance.now();
      try {
        await installCheck(staged);
      } catch (e) {
        this.slots.removeStaging();
        throw e;
      }
      at.checked = performance.now();
      const id = staged.manifest.id;
      // Into releases/<id> (nothing points at it yet: a crash here only
      // leaves one more kept release); a copy already kept is swapped for it.
      commit(this.d.paths, staged);
      this.slots.keepIndex(id, staged);
      // The same release again: if its agent is healthy there is nothing to
      // do; if not, it is restarted below.
      if (id === from) {
        const h = await localHealth(this.d.paths.agentSock, 1000).catch(() => null);
        if (h && h.release === id && isAlive(h.pid)) {
          clearJournal(this.d.paths);
          return { status: "unchanged", release: { id, version: staged.manifest.version }, previous: prev, agent_pid: h.pid, transcript: null };
        }
      }
      this.journal({ op: "update", phase: "switched", from, prev, target: id, pid: null }, started);
      this.slots.mark(id, "unknown");
      if (from !== id) {
        this.slots.setPrevious(from);
        this.slots.setCurrent(id);
      }
      let restarted: Awaited<ReturnType<Supervisor["restart"]>>;
      try {
        restarted = await this.d.sup.restart();
      } catch (e) {
        // Could not even start the new agent: go back, as for an unhealthy one.
        await this.undoSwitch(from, prev, id);
        throw e;
      }
      const { pid, logOffset } = restarted;
      at.restarted = performance.now();
      this.journal({ op: "update", phase: "probing", from, prev, target: id, pid }, started);
      const t = await probe({ sock: this.d.paths.agentSock, release: id, pid, deadlineMs: timeouts.probe(), logTail: () => this.d.sup.logSince(logOffset) });
      if (t.healthy) {
        this.slots.mark(id, "good");
        clearJournal(this.d.paths);
        const pruned = this.slots.prune(this.d.cfg.keepReleases);
        if (pruned.length) this.d.log.info(`pruned ${pruned.map((p) => p.slice(0, 12)).join(", ")}`);
        const end = performance.now();
        this.d.log.info(`updated to ${id.slice(0, 12)} (${staged.manifest.version}), agent pid ${pid}, in ${ms(at.start, end)} ms: stage ${ms(at.start, at.staged)}${staged.resumedBytes ? ` (resumed hashing after ${Math.round(staged.resumedBytes / 2 ** 20)} MiB, ${Math.round(staged.keptBytes / 2 ** 20)} MiB already in place)` : ""}, check ${ms(at.staged, at.checked)}, switch+restart ${ms(at.checked, at.restarted)}, probe ${ms(at.restarted, end)}`);
        return { status: "updated", release: { id, version: staged.manifest.version }, previous: from === id ? prev : from, agent_pid: pid, transcript: t };
      }
      return await this.revert({ id, from, prev, started, newT: t });
    } finally {
      // Whatever happened, no operation is in flight once we answer.
      if (readJournal(this.d.paths)?.op === "update") clearJournal(this.d.paths);
    }
  }

  /** Best effort after a failure past the switch: slots back, the old agent running. */
  private async undoSwitch(from: string | null, prev: string | null, failed: string): Promise<void> {
    this.slots.mark(failed, "failed");
    this.slots.setCurrent(from);
    this.slots.setPrevious(prev);
    clearJournal(this.d.paths);
    if (from) await this.restartAndProbe(from).catch((e) => this.d.log.error("could not restart the previous agent:", e));
  }

  /** The new agent is unhealthy: flip back, restart, re-probe, answer 409. */
  private async revert(o: { id: string; from: string | null; prev: string | null; started: string; newT: ProbeTranscript }): Promise<never> {
    const { id, from, prev } = o;
    this.slots.mark(id, "failed");
    this.journal({ op: "update", phase: "reverting", from, prev, target: id, pid: null }, o.started);
    this.d.log.warn(`release ${id.slice(0, 12)} unhealthy; ${from ? `rolling back to ${from.slice(0, 12)}` : "nothing to roll back to"}`);
    let oldT: ProbeTranscript | null = null;
    if (from && from !== id) {
      this.slots.setCurrent(from);
      this.slots.setPrevious(prev);
      oldT = (await this.restartAndProbe(from)).t;
    } else {
      // First install (or the failing release was already current): leave no
      // dangling current and no failed agent behind, and keep serving.
      await this.d.sup.stop();
      this.slots.setCurrent(null);
      if (from === id) this.slots.setPrevious(prev);
    }
    clearJournal(this.d.paths);
    const detail: RolledBackDetail = { rolled_back: oldT !== null, failed_release: id, current: this.slots.current(), transcripts: { new: o.newT, old: oldT } };
    const last = o.newT.attempts.at(-1)?.note ?? "unhealthy";
    const msg = oldT
      ? `release ${id.slice(0, 12)} was unhealthy (${last}); rolled back to ${from!.slice(0, 12)}${oldT.healthy ? "" : ", which is unhealthy too"}`
      : `release ${id.slice(0, 12)} was unhealthy (${last}); no previous release to roll back to, no agent running`;
    throw new DecnetError("rolled_back", msg, { detail });
  }

  async rollback(): Promise<SwitchResponse> {
    const from = this.slots.current();
    const to = this.slots.previous();
    if (!to || !this.slots.has(to)) throw new DecnetError("no_previous", "there is no previous release to roll back to");
    const started = (this.d.now?.() ?? new Date()).toISOString();
    this.journal({ op: "rollback", phase: "switched", from, prev: to, target: to, pid: null }, started);
    this.slots.setCurrent(to);
    this.slots.setPrevious(from);
    const { pid, t } = await this.restartAndProbe(to);
    if (t.healthy) {
      clearJournal(this.d.paths);
      this.d.log.info(`rolled back to ${to.slice(0, 12)}, agent pid ${pid}`);
      return { status: "rolled-back", release: { id: to, version: this.versionOf(to) }, previous: from, agent_pid: pid, transcript: t };
    }
    // The previous release does not come up: go back to where we were.
    this.slots.setCurrent(from);
    this.slots.setPrevious(to);
    const oldT = from ? (await this.restartAndProbe(from)).t : null;
    clearJournal(this.d.paths);
    const detail: RolledBackDetail = { rolled_back: false, failed_release: to, current: from, transcripts: { new: t, old: oldT } };
    throw new DecnetError("unhealthy", `previous release ${to.slice(0, 12)} was unhealthy; stayed on ${from?.slice(0, 12) ?? "none"}`, { detail });
  }

  /**
   * After a crash: drop staging, undo any switch that was not confirmed, and
   * stop an agent started for it. Synchronous part only; see ensureAgent().
   */
  recoverJournal(): string | null {
    const staged = this.slots.removeStaging();
    const j = readJournal(this.d.paths);
    if (!j || j.op === "update-self") return staged ? `removed ${staged} staging dir(s)` : null;
    if (j.phase !== "staging") {
      this.slots.setCurrent(j.from);
      this.slots.setPrevious(j.prev);
      if (j.op === "update" && j.target && j.target !== j.from) this.slots.mark(j.target, "failed");
      if (j.pid && isAlive(j.pid) && this.d.sup.isOurs(j.pid)) {
        try { process.kill(j.pid, "SIGKILL"); } catch {}
      }
    }
    clearJournal(this.d.paths);
    return `recovered from an interrupted ${j.op} (${j.phase}): current is ${j.phase === "staging" ? "unchanged" : `back on ${j.from?.slice(0, 12) ?? "none"}`}`;
  }

  /** Makes sure the agent that runs is current's; restarts it otherwise. */
  async ensureAgent(): Promise<void> {
    const cur = this.slots.current();
    if (!cur || !this.slots.has(cur)) {
      this.d.log.info("no current release; not starting an agent");
      return;
    }
    let h = await localHealth(this.d.paths.agentSock, 1000).catch(() => null);
    const running = this.d.sup.agents();
    // One agent that does not answer yet may be starting (systemd starts it
    // beside the updater at boot): give it the probe's time, not a restart.
    const deadline = Date.now() + timeouts.probe();
    while (!h && running.length === 1 && isAlive(running[0]!) && Date.now() < deadline) {
      await Bun.sleep(50);
      h = await localHealth(this.d.paths.agentSock, 1000).catch(() => null);
    }
    if (h && h.release === cur && running.length === 1 && running[0] === h.pid) {
      this.d.log.info(`agent pid ${h.pid} already runs ${cur.slice(0, 12)}`);
      return;
    }
    const { pid, t } = await this.restartAndProbe(cur);
    this.d.log[t.healthy ? "info" : "warn"](`agent pid ${pid} on ${cur.slice(0, 12)}: ${t.healthy ? "healthy" : t.attempts.at(-1)?.note}`);
  }
}
