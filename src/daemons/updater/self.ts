/**
 * The updater replacing itself: the shared journalled install into
 * `<install-dir>/updater/releases/<id>`, with a preflight of the new binary
 * under this exact configuration (it binds nothing) as its last check, the
 * flip of the updater's own slots, then — after the 202 is on the wire —
 * execve in place; and on start, confirming or undoing that.
 */
import type { SwitchResponse } from "../../protocol/updater.ts";
import { buildInfo } from "../../lib/build-info.ts";
import { type ResolvedUpdaterConfig, updaterArgv, updaterEnv } from "../../lib/config.ts";
import { DecnetError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { type InstallPaths, RELEASE_BINARY } from "../../lib/paths.ts";
import { run } from "../../lib/proc.ts";
import { reexec } from "../../lib/reexec.ts";
import { timeouts } from "../../lib/timeouts.ts";
import { join } from "node:path";
import { install, recoverInstall } from "./install-sequence.ts";
import { report } from "./ops.ts";
import { ReleaseSet } from "./release-set.ts";
import type { Staged } from "./staging.ts";

export class SelfOps {
  readonly set: ReleaseSet;
  constructor(private cfg: ResolvedUpdaterConfig, private paths: InstallPaths, private log: Logger) {
    this.set = new ReleaseSet(paths.updater);
  }

  /**
   * Stage (full or delta, via `stage`), check, preflight, commit, flip.
   * Returns what to answer and whether to re-exec.
   */
  async install(stage: () => Promise<Staged>): Promise<{ response: SwitchResponse; reexec: boolean }> {
    const running = buildInfo().release;
    const r = await install({
      op: "update-self",
      set: this.set,
      stage,
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
    this.set.flip(id, journal.from === id ? journal.prev : journal.from);
    this.log.info(`self-update to ${id.slice(0, 12)} (${staged.manifest.version}) installed; re-executing`);
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
    const running = buildInfo().release;
    const r = recoverInstall(this.set, (j) => j.target === running);
    switch (r.outcome) {
      case "none":
        return null;
      case "damaged-journal":
        return `updater/state.json could not be read; moved it to ${r.aside} and kept the updater's slots as the links say`;
      case "confirmed":
        this.set.prune(this.cfg.keepReleases);
        return `self-update to ${r.journal.target!.slice(0, 12)} confirmed`;
      case "undone":
        return `self-update to ${r.journal.target?.slice(0, 12)} did not take over (running ${running?.slice(0, 12) ?? "a non-release binary"}); updater slots restored`;
      case "discarded":
        return "an interrupted self-update upload was discarded";
    }
  }
}
