/**
 * The updater replacing itself, without a window in which it can brick the
 * worker: the shared journalled install into updater/releases/<id> (with a
 * preflight of the new binary as its last check), then — after the 202 is on
 * the wire — a watchdog started from this binary, and execve of the new one
 * straight from its release dir. `updater/current` does not move yet: until
 * the new image serves and confirms itself, whatever restarts the updater
 * (systemd's Restart=, or the watchdog) runs the previous one, which undoes
 * the switch on start and records what happened for /health.
 */
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { SelfUpdateRecord, type SwitchResponse } from "../../protocol/updater.ts";
import { writeFileAtomic } from "../../lib/atomic.ts";
import { buildInfo } from "../../lib/build-info.ts";
import { type ResolvedUpdaterConfig, updaterArgv, updaterEnv } from "../../lib/config.ts";
import { DecnetError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { type InstallPaths, RELEASE_BINARY } from "../../lib/paths.ts";
import { run } from "../../lib/proc.ts";
import { reexec } from "../../lib/reexec.ts";
import { timeouts } from "../../lib/timeouts.ts";
import { env } from "../../lib/env.ts";
import { GUARD_FDS_ENV } from "./guards.ts";
import { install, recoverInstall } from "./install-sequence.ts";
import { readJournal } from "./journal.ts";
import { report } from "./ops.ts";
import { ReleaseSet } from "./release-set.ts";
import { spawnWatchdog } from "./self-watch.ts";
import { trustGate } from "./trust-gate.ts";
import type { TrustStore } from "./trust-store.ts";
import type { Staged } from "./staging.ts";

/** What the new image's stderr said, at most this much. */
const LAST_WORDS = 8192;

export class SelfOps {
  readonly set: ReleaseSet;
  /** The release this process replaces itself with, once /update-self installed it. */
  private target: { id: string; from: string | null } | null = null;

  constructor(
    private cfg: ResolvedUpdaterConfig,
    private paths: InstallPaths,
    private log: Logger,
    /** Port guards the new image takes over (guards.ts). */
    private guardFds: number[] = [],
    /** The trust document held: a self-update must be signed as an agent release is. */
    private trust?: TrustStore,
  ) {
    this.set = new ReleaseSet(paths.updater);
  }

  /**
   * Stage (full or delta, via `stage`), check, preflight, commit. Returns
   * what to answer and whether to re-exec; the slots stay as they are.
   */
  async install(stage: () => Promise<Staged>, o: { allowDowngrade?: boolean } = {}): Promise<{ response: SwitchResponse; reexec: boolean }> {
    const running = buildInfo().release;
    const r = await install({
      op: "update-self",
      set: this.set,
      stage,
      verify: trustGate(this.trust, buildInfo().version, Boolean(o.allowDowngrade)),
      pid: process.pid,
      // Already running exactly this release: nothing to replace.
      unchanged: async (s, _from, prev) =>
        s.manifest.id === running
          ? { status: "unchanged", release: { id: s.manifest.id, version: s.manifest.version }, previous: prev, agent_pid: null, transcript: null, install: report(s, { stage: 0, check: 0, switch: 0, probe: 0 }) }
          : null,
      preflight: (s) => this.preflight(join(s.dir, RELEASE_BINARY)),
    });
    if (!r.switched) return { response: r.response, reexec: false };
    const { staged, journal } = r;
    const id = staged.manifest.id;
    this.target = { id, from: running };
    this.log.info(`self-update to ${id.slice(0, 12)} (${staged.manifest.version}) installed; re-executing it on trial`);
    const release = { id, version: staged.manifest.version };
    return { response: { status: "updated", release, previous: journal.from, agent_pid: null, transcript: null, install: report(staged, { ...r.ms, switch: 0, probe: 0 }) }, reexec: true };
  }

  /** The new binary loads this exact configuration and binds nothing; refuse if it cannot. */
  private async preflight(exe: string): Promise<void> {
    const r = await run([exe, ...updaterArgv(this.cfg), "--preflight"], { timeoutMs: timeouts.installCheck(), env: updaterEnv(this.cfg) });
    if (r.code !== 0) {
      const why = r.spawnError ?? (r.timedOut ? "timed out" : `exited ${r.code}`);
      throw new DecnetError("install_failed", `self-update preflight failed (${why}): ${r.stderr.trim().split("\n").slice(-3).join(" | ")}; the running updater was not replaced`, {
        detail: { exit_code: r.code, stderr: r.stderr.slice(-8192), stdout: r.stdout.slice(-2048) },
      });
    }
  }

  /**
   * Replaces this process with the installed release's binary, same pid,
   * after starting the watchdog that puts this one back if the new one does
   * not confirm itself. If execve itself fails the servers are already down:
   * exit non-zero, and the watchdog (or systemd) starts this release again.
   */
  async reexec(stopServers: () => void): Promise<never> {
    const t = this.target;
    if (!t) throw new Error("reexec without an installed self-update");
    this.record({ target: t.id, from: t.from, outcome: "trial", at: new Date().toISOString() }, this.logSize());
    stopServers();
    spawnWatchdog(this.cfg, this.paths, { target: t.id, deadlineMs: timeouts.selfConfirm() }, this.log);
    const exe = join(this.paths.updater.release(t.id), RELEASE_BINARY);
    try {
      return await reexec(exe, [exe, ...updaterArgv(this.cfg)], { ...updaterEnv(this.cfg), [GUARD_FDS_ENV]: this.guardFds.join(",") }, this.guardFds);
    } catch (e) {
      this.log.error(`re-exec of ${exe} failed; exiting for the previous updater to be started again:`, e);
      process.exit(1);
    }
  }

  /**
   * On start, before serving: a self-update this process is the result of
   * stays on trial (confirmTrial() ends it once this process serves); one it
   * is not the result of is undone — this is the previous updater, started
   * again because the new one never confirmed — and recorded with the new
   * one's last words.
   */
  recover(): string | null {
    const running = buildInfo().release;
    const { journal: j } = readJournal(this.set.paths);
    if (j?.op === "update-self" && j.phase !== "staging" && j.target && j.target === running) {
      return `self-update to ${j.target.slice(0, 12)}: on trial until this updater serves`;
    }
    const r = recoverInstall(this.set, () => false);
    switch (r.outcome) {
      case "none":
        return null;
      case "damaged-journal":
        return `updater/state.json could not be read; moved it to ${r.aside} and kept the updater's slots as the links say`;
      case "confirmed":
        return null;
      case "undone": {
        const target = r.journal.target;
        const words = target ? this.rolledBack(target, r.journal.from) : "";
        return `self-update to ${target?.slice(0, 12)} did not take over (running ${running?.slice(0, 12) ?? "a non-release binary"}); updater slots restored${words ? `; it said: ${words.trim().split("\n").at(-1)}` : ""}`;
      }
      case "discarded":
        return "an interrupted self-update upload was discarded";
    }
  }

  /**
   * This process serves and answered its own /health (`selfCheck`): a
   * self-update on trial becomes final — updater/current moves to it, it is
   * marked good, older releases are pruned.
   */
  async confirmTrial(selfCheck: () => Promise<boolean>): Promise<string | null> {
    const running = buildInfo().release;
    const { journal: j } = readJournal(this.set.paths);
    if (!(j?.op === "update-self" && j.target && j.target === running)) return null;
    if (!(await selfCheck())) return `self-update to ${j.target.slice(0, 12)}: this updater does not answer its own /health; not confirmed`;
    recoverInstall(this.set, () => true);
    this.set.prune(this.cfg.keepReleases);
    this.record({ target: j.target, from: j.from, outcome: "confirmed", at: new Date().toISOString() });
    return `self-update to ${j.target.slice(0, 12)} confirmed`;
  }

  /** The last self-update's record, for /health. */
  last(): SelfUpdateRecord | null {
    try {
      const r = SelfUpdateRecord.safeParse(JSON.parse(readFileSync(this.paths.updater.selfUpdate, "utf8")));
      return r.success ? r.data : null;
    } catch {
      return null;
    }
  }

  /** Records a rollback with what the new updater wrote after the re-exec; returns those words. */
  private rolledBack(target: string, from: string | null): string {
    const trial = this.trial();
    const words = !trial ? "" : env("INVOCATION_ID") ? journalBetween(trial.at, trial.endedAt) : this.logBetween(trial.offset, trial.end);
    this.record({ target, from, outcome: "rolled-back", at: new Date().toISOString(), ...(words ? { log_tail: words } : {}) });
    this.log.warn(`self-update to ${target.slice(0, 12)} rolled back: the new updater never confirmed itself`);
    return words;
  }

  private record(r: SelfUpdateRecord, logOffset?: number): void {
    writeFileAtomic(this.paths.updater.selfUpdate, `${JSON.stringify({ ...r, ...(logOffset === undefined ? {} : { log_offset: logOffset }) })}\n`, 0o600);
  }

  /**
   * When the trial began and where updater.log stood then; and, when the
   * watchdog saw it fail, where the new updater's words ended (kept in the
   * record beside it).
   */
  private trial(): { at: string; offset: number; endedAt: string | null; end: number | null } | null {
    try {
      const raw = JSON.parse(readFileSync(this.paths.updater.selfUpdate, "utf8")) as Record<string, unknown>;
      if (raw.outcome !== "trial" || typeof raw.at !== "string" || typeof raw.log_offset !== "number") return null;
      return { at: raw.at, offset: raw.log_offset, endedAt: typeof raw.ended_at === "string" ? raw.ended_at : null, end: typeof raw.log_end === "number" ? raw.log_end : null };
    } catch {
      return null;
    }
  }

  private logSize(): number {
    try {
      return statSync(this.paths.updater.log).size;
    } catch {
      return 0;
    }
  }

  private logBetween(offset: number, end: number | null): string {
    try {
      const text = readFileSync(this.paths.updater.log).subarray(offset, end ?? undefined).toString("utf8");
      return text.length > LAST_WORDS ? text.slice(-LAST_WORDS) : text;
    } catch {
      return "";
    }
  }
}

/** The updater unit's journal between two times (under systemd the new image wrote there), at most LAST_WORDS. */
function journalBetween(from: string, to: string | null): string {
  const at = (iso: string) => `@${Math.floor(Date.parse(iso) / 1000)}`;
  const until = to ? ["--until", `@${Math.ceil(Date.parse(to) / 1000)}`] : [];
  // The updater's own lines (its unit's SyslogIdentifier), not systemd's about the unit.
  const r = Bun.spawnSync(["journalctl", "--no-pager", "-q", "-o", "cat", "SYSLOG_IDENTIFIER=decnet-updater", "--since", at(from), ...until], { stdout: "pipe", stderr: "ignore", timeout: 5_000 });
  const text = r.success ? r.stdout.toString() : "";
  return text.length > LAST_WORDS ? text.slice(-LAST_WORDS) : text;
}
