/**
 * The updater's operations on the agent's release set: update (the shared
 * journalled install, then flip → restart → probe, or flip back), rollback
 * (swap current and previous), and recovery after a crash.
 */
import type { ProbeTranscript } from "../../protocol/common.ts";
import type { InstallReport, RolledBackDetail, SwitchResponse } from "../../protocol/updater.ts";
import type { ResolvedUpdaterConfig } from "../../lib/config.ts";
import type { LocalHealth } from "../../lib/control-socket.ts";
import { DecnetError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import type { InstallPaths } from "../../lib/paths.ts";
import { isAlive } from "../../lib/procfs.ts";
import { timeouts } from "../../lib/timeouts.ts";
import { checkRollback } from "../../protocol/trust.ts";
import { install, recoverInstall } from "./install-sequence.ts";
import { trustGate } from "./trust-gate.ts";
import type { TrustStore } from "./trust-store.ts";
import { OpJournal } from "./journal.ts";
import { type ProbeOptions, probe as realProbe } from "./probe.ts";
import { ReleaseSet } from "./release-set.ts";
import type { Staged } from "./staging.ts";

/** What the operations need from whoever runs the agent (supervisor.ts; a fake in unit tests). */
export interface AgentControl {
  /** Stops this worker's agent and starts current's; `logOffset` marks where its output begins. */
  restart(): Promise<{ pid: number | null; logOffset: number }>;
  stop(): Promise<number[]>;
  /** Live agents of this worker. */
  agents(): number[];
  /** Kills the agent an interrupted operation started, if it is still that exact process. */
  killUnconfirmed(pid: number, start: number | null): void;
  /** The agent's output since `offset`, for a probe transcript. */
  logSince(offset: number): string;
}

export interface OpsDeps {
  cfg: Pick<ResolvedUpdaterConfig, "keepReleases">;
  paths: InstallPaths;
  sup: AgentControl;
  log: Logger;
  /** The running agent's local /health, or null when it does not answer. */
  health: () => Promise<LocalHealth | null>;
  probe?: (o: ProbeOptions) => Promise<ProbeTranscript>;
  /** The trust document held (trust-store.ts); none: releases need no signature. */
  trust?: TrustStore;
  now?: () => Date;
}

export interface UpdateOptions {
  /** A signed release older than the running one may come in (never below the floor). */
  allowDowngrade?: boolean;
}

const ms = (a: number, b: number) => Math.round(b - a);

export class AgentOps {
  readonly set: ReleaseSet;
  private probeFn: (o: ProbeOptions) => Promise<ProbeTranscript>;

  constructor(private d: OpsDeps) {
    this.set = new ReleaseSet(d.paths);
    this.probeFn = d.probe ?? realProbe;
  }

  /** Restart the agent on whatever `current` is and probe it for `release`. */
  private async restartAndProbe(release: string | null): Promise<{ pid: number | null; t: ProbeTranscript }> {
    const { pid, logOffset } = await this.d.sup.restart();
    return { pid, t: await this.probeAgent(release, pid, logOffset) };
  }

  private probeAgent(release: string | null, pid: number | null, logOffset: number): Promise<ProbeTranscript> {
    return this.probeFn({ sock: this.d.paths.agentSock, release, pid, deadlineMs: timeouts.probe(), logTail: () => this.d.sup.logSince(logOffset) });
  }

  private versionOf(id: string): string {
    return this.set.manifest(id)?.version ?? "?";
  }

  /** The same release again: nothing to do while its agent is healthy (else it is restarted). */
  private async unchangedIfHealthy(s: Staged, from: string | null, prev: string | null): Promise<SwitchResponse | null> {
    const id = s.manifest.id;
    if (id !== from) return null;
    const h = await this.d.health();
    if (!h || h.release !== id || !isAlive(h.pid)) return null;
    return { status: "unchanged", release: { id, version: s.manifest.version }, previous: prev, agent_pid: h.pid, transcript: null, install: report(s, { stage: 0, check: 0, switch: 0, probe: 0 }) };
  }

  /** `stage` turns the upload (full or delta) into a verified staging dir. */
  async update(stage: () => Promise<Staged>, o: UpdateOptions = {}): Promise<SwitchResponse> {
    const t0 = performance.now();
    const cur = this.set.current();
    const verify = trustGate(this.d.trust, cur ? (this.set.manifest(cur)?.version ?? null) : null, Boolean(o.allowDowngrade));
    const r = await install({ op: "update", set: this.set, stage, verify, unchanged: (s, from, prev) => this.unchangedIfHealthy(s, from, prev), now: this.d.now });
    if (!r.switched) return r.response;
    const { staged, journal } = r;
    const { from, prev } = journal;
    const id = staged.manifest.id;
    try {
      if (from !== id) this.set.flip(id, from);
      const t1 = performance.now();
      let restarted: Awaited<ReturnType<AgentControl["restart"]>>;
      try {
        restarted = await this.d.sup.restart();
      } catch (e) {
        // The agent could not even be started (a port held, systemctl
        // failing): go back. The release never ran, so it is not blamed:
        // it stays "unknown", not "failed".
        await this.undoSwitch(journal);
        throw e;
      }
      const { pid, logOffset } = restarted;
      const t2 = performance.now();
      journal.step("probing", id, pid);
      const t = await this.probeAgent(id, pid, logOffset);
      if (!t.healthy) return await this.revert(journal, id, t);
      this.set.mark(id, "good");
      journal.clear();
      const pruned = this.set.prune(this.d.cfg.keepReleases);
      if (pruned.length) this.d.log.info(`pruned ${pruned.map((p) => p.slice(0, 12)).join(", ")}`);
      const times = { ...r.ms, switch: ms(t1, t2), probe: ms(t2, performance.now()) };
      const rep = report(staged, times);
      this.d.log.info(`updated to ${id.slice(0, 12)} (${staged.manifest.version}) by ${rep.mode}, agent pid ${pid}, in ${ms(t0, performance.now())} ms: stage ${times.stage} (written ${rep.bytes_written} B, ${rep.bytes_in_place} B already in place), check ${times.check}, switch+restart ${times.switch}, probe ${times.probe}`);
      return { status: "updated", release: { id, version: staged.manifest.version }, previous: from === id ? prev : from, agent_pid: pid, transcript: t, install: rep };
    } finally {
      // Whatever happened, no operation is in flight once we answer.
      journal.clear();
    }
  }

  /**
   * Whether kept release `id` may run again: intact on disk as it was
   * verified (release-check.ts). A damaged one is marked, logged, and not run.
   */
  private async runnable(id: string): Promise<boolean> {
    const problem = await this.set.damage(id);
    if (problem) this.d.log.error(`release ${id.slice(0, 12)} is damaged on disk (${problem}); it will not be run; push it again to repair it`);
    return problem === null;
  }

  /** Best effort after a failure past the switch: slots back, the old agent running. */
  private async undoSwitch(j: OpJournal): Promise<void> {
    const back = j.from && (await this.runnable(j.from)) ? j.from : null;
    this.set.flip(back, j.prev);
    j.clear();
    if (back) await this.restartAndProbe(back).catch((e) => this.d.log.error("could not restart the previous agent:", e));
  }

  /** The new agent is unhealthy: flip back, restart, re-probe, answer 409. */
  private async revert(j: OpJournal, id: string, newT: ProbeTranscript): Promise<never> {
    const { from, prev } = j;
    this.set.mark(id, "failed");
    j.step("reverting", id);
    this.d.log.warn(`release ${id.slice(0, 12)} unhealthy; ${from ? `rolling back to ${from.slice(0, 12)}` : "nothing to roll back to"}`);
    let oldT: ProbeTranscript | null = null;
    if (from && from !== id && (await this.runnable(from))) {
      this.set.flip(from, prev);
      oldT = (await this.restartAndProbe(from)).t;
    } else {
      // First install (or the failing release was already current): leave no
      // dangling current and no failed agent behind, and keep serving.
      await this.d.sup.stop();
      this.set.flip(null, from === id ? prev : this.set.previous());
    }
    j.clear();
    const detail: RolledBackDetail = { rolled_back: oldT !== null, failed_release: id, current: this.set.current(), transcripts: { new: newT, old: oldT } };
    const last = newT.attempts.at(-1)?.note ?? "unhealthy";
    const msg = oldT
      ? `release ${id.slice(0, 12)} was unhealthy (${last}); rolled back to ${from!.slice(0, 12)}${oldT.healthy ? "" : ", which is unhealthy too"}`
      : `release ${id.slice(0, 12)} was unhealthy (${last}); no previous release to roll back to, no agent running`;
    throw new DecnetError("rolled_back", msg, { detail });
  }

  async rollback(): Promise<SwitchResponse> {
    const from = this.set.current();
    const to = this.set.previous();
    if (!to || !this.set.has(to)) throw new DecnetError("no_previous", "there is no previous release to roll back to");
    const floor = checkRollback(this.d.trust?.get() ?? null, this.set.manifest(to)?.version ?? "");
    if (!floor.ok) throw new DecnetError(floor.code, floor.message);
    const problem = await this.set.damage(to);
    if (problem) {
      throw new DecnetError("release_damaged", `previous release ${to.slice(0, 12)} is damaged on disk (${problem}); not rolled back, still on ${from?.slice(0, 12) ?? "none"}`, {
        detail: { release: to, problem },
      });
    }
    const j = new OpJournal(this.set.paths, "rollback", from, to, this.d.now?.());
    j.step("switched", to);
    this.set.flip(to, from);
    const { pid, t } = await this.restartAndProbe(to);
    if (t.healthy) {
      // Proven healthy just now: a release recovery marked failed (an interrupted push of it) is good again.
      this.set.mark(to, "good");
      j.clear();
      this.d.log.info(`rolled back to ${to.slice(0, 12)}, agent pid ${pid}`);
      return { status: "rolled-back", release: { id: to, version: this.versionOf(to) }, previous: from, agent_pid: pid, transcript: t, install: null };
    }
    // The previous release does not come up: go back to where we were.
    this.set.flip(from, to);
    const oldT = from ? (await this.restartAndProbe(from)).t : null;
    j.clear();
    const detail: RolledBackDetail = { rolled_back: false, failed_release: to, current: from, transcripts: { new: t, old: oldT } };
    throw new DecnetError("unhealthy", `previous release ${to.slice(0, 12)} was unhealthy; stayed on ${from?.slice(0, 12) ?? "none"}`, { detail });
  }

  /**
   * After a crash: drop staging, undo any switch that was not confirmed, and
   * stop an agent started for it. Synchronous part only; see ensureAgent().
   */
  recoverJournal(): string | null {
    const r = recoverInstall(this.set, () => false);
    if (r.outcome === "none") return null;
    if (r.outcome === "damaged-journal") return `state.json could not be read; moved it to ${r.aside} and kept the slots as the links say`;
    const j = r.journal;
    if (j.pid) this.d.sup.killUnconfirmed(j.pid, j.start);
    return `recovered from an interrupted ${j.op} (${j.phase}): current is ${j.phase === "staging" ? "unchanged" : `back on ${j.from?.slice(0, 12) ?? "none"}`}`;
  }

  /**
   * Makes sure the agent that runs is current's; restarts it otherwise —
   * from current only if it is intact, else from an intact previous (the
   * switch journalled like a rollback), else none.
   */
  async ensureAgent(): Promise<void> {
    let cur = this.set.current();
    if (!cur || !this.set.has(cur)) {
      this.d.log.info("no current release; not starting an agent");
      return;
    }
    let h = await this.d.health();
    const running = this.d.sup.agents();
    // One agent that does not answer yet may be starting (systemd starts it
    // beside the updater at boot): give it the probe's time, not a restart.
    const deadline = Date.now() + timeouts.probe();
    while (!h && running.length === 1 && isAlive(running[0]!) && Date.now() < deadline) {
      await Bun.sleep(50);
      h = await this.d.health();
    }
    if (h && h.release === cur && running.length === 1 && running[0] === h.pid) {
      this.d.log.info(`agent pid ${h.pid} already runs ${cur.slice(0, 12)}`);
      return;
    }
    if (!(await this.runnable(cur))) {
      const prev = this.set.previous();
      const fallback = prev && this.set.has(prev) && (await this.runnable(prev)) ? prev : null;
      this.d.log.warn(fallback ? `starting the previous release ${fallback.slice(0, 12)} instead` : "no intact release to start; no agent runs until the next push");
      if (!fallback) {
        await this.d.sup.stop();
        return;
      }
      this.set.flip(fallback, null);
      cur = fallback;
    }
    const { pid, t } = await this.restartAndProbe(cur);
    this.d.log[t.healthy ? "info" : "warn"](`agent pid ${pid} on ${cur.slice(0, 12)}: ${t.healthy ? "healthy" : t.attempts.at(-1)?.note}`);
  }
}

/** What staging did and where the time went, for the answer. */
export function report(s: Staged, times: InstallReport["ms"]): InstallReport {
  return { ...s.report, ms: times };
}
