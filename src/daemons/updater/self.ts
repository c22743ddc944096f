/**
 * The updater replacing itself: the same verified install into
 * `<install-dir>/updater/releases/<id>`, a preflight of the new binary with
 * this exact configuration (binds nothing), the flip of the updater's own
 * slots, then — after the 202 is on the wire — execve in place. No automatic
 * rollback: the preflight is what keeps a broken updater from replacing this one.
 */
import type { SwitchResponse } from "../../protocol/updater.ts";
import { buildInfo } from "../../lib/build-info.ts";
import type { ResolvedUpdaterConfig } from "../../lib/config.ts";
import { envSnapshot } from "../../lib/env.ts";
import { DecnetError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { type InstallPaths, RELEASE_BINARY } from "../../lib/paths.ts";
import { run } from "../../lib/proc.ts";
import { reexec } from "../../lib/reexec.ts";
import { timeouts } from "../../lib/timeouts.ts";
import { join } from "node:path";
import { commit, installCheck } from "./install.ts";
import { clearJournal, readJournal, writeJournal } from "./journal.ts";
import { Slots } from "./slots.ts";
import type { Staged } from "./stage.ts";

/** The updater's command line, rebuilt from its resolved configuration. */
export function updaterArgv(cfg: ResolvedUpdaterConfig): string[] {
  return [
    "updater", "--host", cfg.host, "--port", String(cfg.port), "--updater-dir", cfg.updaterDir,
    "--install-dir", cfg.installDir, "--agent-dir", cfg.agentDir, "--agent-port", String(cfg.agentPort),
    "--agent-supervisor", cfg.agentSupervisor,
  ];
}

/** The same configuration in the environment, for the new image (DESIGN §5). */
export function updaterEnv(cfg: ResolvedUpdaterConfig): Record<string, string> {
  return envSnapshot({
    DECNET_UPDATER_HOST: cfg.host,
    DECNET_UPDATER_PORT: String(cfg.port),
    DECNET_UPDATER_BUNDLE_DIR: cfg.updaterDir,
    DECNET_UPDATER_INSTALL_DIR: cfg.installDir,
    DECNET_UPDATER_AGENT_DIR: cfg.agentDir,
    DECNET_AGENT_PORT: String(cfg.agentPort),
  });
}

export class SelfOps {
  readonly slots: Slots;
  constructor(private cfg: ResolvedUpdaterConfig, private paths: InstallPaths, private log: Logger) {
    this.slots = new Slots(paths.updater);
  }

  /**
   * Stage (full or delta, via `stage`), check, preflight, commit, flip.
   * Returns what to answer and whether to re-exec.
   */
  async install(stage: () => Promise<Staged>): Promise<{ response: SwitchResponse; reexec: boolean }> {
    const started = new Date().toISOString();
    const from = this.slots.current();
    const prev = this.slots.previous();
    writeJournal(this.paths.updater, { op: "update-self", phase: "staging", from, prev, target: null, pid: process.pid, started_at: started });
    try {
      const staged = await stage();
      const id = staged.manifest.id;
      const release = { id, version: staged.manifest.version };
      try {
        await installCheck(staged);
        if (id === buildInfo().release) {
          // Already running exactly this release: nothing to replace.
          commit(this.paths.updater, staged);
          clearJournal(this.paths.updater);
          return { response: { status: "unchanged", release, previous: prev, agent_pid: null, transcript: null }, reexec: false };
        }
        await this.preflight(join(staged.dir, RELEASE_BINARY));
      } catch (e) {
        this.slots.removeStaging();
        throw e;
      }
      writeJournal(this.paths.updater, { op: "update-self", phase: "switched", from, prev, target: id, pid: process.pid, started_at: started });
      commit(this.paths.updater, staged);
      this.slots.keepIndex(id, staged);
      this.slots.mark(id, "unknown");
      if (from !== id) this.slots.setPrevious(from);
      this.slots.setCurrent(id);
      this.log.info(`self-update to ${id.slice(0, 12)} (${release.version}) installed; re-executing`);
      return { response: { status: "updated", release, previous: from, agent_pid: null, transcript: null }, reexec: true };
    } catch (e) {
      if (readJournal(this.paths.updater)?.phase === "staging") clearJournal(this.paths.updater);
      throw e;
    }
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
   * Replace this process with updater/current/decnet, same pid. If execve
   * itself fails the servers are already down: exit non-zero so a supervisor
   * (systemd's Restart=) starts updater/current, the release that passed
   * preflight.
   */
  async reexec(stopServers: () => void): Promise<never> {
    stopServers();
    const exe = join(this.paths.updater.current, RELEASE_BINARY);
    try {
      return await reexec(exe, [exe, ...updaterArgv(this.cfg)], updaterEnv(this.cfg));
    } catch (e) {
      this.log.error(`re-exec of ${exe} failed; exiting for the supervisor to restart it:`, e);
      process.exit(1);
    }
  }

  /**
   * On start: finish a self-update this process is the result of (mark it
   * good), or undo a flip to a release this process is not running.
   */
  recover(): string | null {
    this.slots.removeStaging();
    const j = readJournal(this.paths.updater);
    if (!j) return null;
    clearJournal(this.paths.updater);
    const running = buildInfo().release;
    if (j.target && running === j.target) {
      this.slots.mark(j.target, "good");
      this.slots.prune(this.cfg.keepReleases);
      return `self-update to ${j.target.slice(0, 12)} confirmed`;
    }
    if (j.phase !== "staging") {
      this.slots.setCurrent(j.from);
      this.slots.setPrevious(j.prev);
      if (j.target) this.slots.mark(j.target, "failed");
      return `self-update to ${j.target?.slice(0, 12)} did not take over (running ${running?.slice(0, 12) ?? "a non-release binary"}); updater slots restored`;
    }
    return "an interrupted self-update upload was discarded";
  }
}
