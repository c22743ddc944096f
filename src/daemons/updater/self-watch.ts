/**
 * The self-update watchdog: a small process started from the running
 * (previous) updater's own binary just before it re-executes into a new
 * release. It waits for the new image to confirm itself (self.ts records
 * "confirmed"); if the new image dies, or is still unconfirmed at the
 * deadline (it cannot bind, hangs, never answers), the watchdog kills it
 * (that exact process) and — unless systemd supervises the updater, whose
 * Restart= does it — starts the previous updater again. That one undoes the
 * switch on start (updater/current never moved).
 */
import { closeSync, openSync, readFileSync, statSync } from "node:fs";
import { writeFileAtomic } from "../../lib/atomic.ts";
import { z } from "zod";
import { SelfUpdateRecord } from "../../protocol/updater.ts";
import { type ResolvedUpdaterConfig, updaterArgv, updaterEnv } from "../../lib/config.ts";
import { env } from "../../lib/env.ts";
import type { Logger } from "../../lib/log.ts";
import type { InstallPaths } from "../../lib/paths.ts";
import { isSame, procOf, signalProc } from "../../lib/signal.ts";
import { GUARD_FDS_ENV } from "./guards.ts";

/** Hands the watchdog its task (the process to watch, the release it must confirm). */
export const WATCH_ENV = "DECNET_SELF_WATCH";

const Watch = z.object({
  pid: z.number().int().positive(),
  start: z.number().int(),
  target: z.string(),
  /** The previous updater's executable: what to start again. */
  exe: z.string(),
  deadline: z.number(),
});
type Watch = z.infer<typeof Watch>;

/** Starts the watchdog for this process's re-exec into `target`, from this process's own binary. */
export function spawnWatchdog(cfg: ResolvedUpdaterConfig, paths: InstallPaths, o: { target: string; deadlineMs: number }, log: Logger): void {
  const me = procOf(process.pid);
  if (!me) return;
  const task: Watch = { pid: me.pid, start: me.start, target: o.target, exe: process.execPath, deadline: Date.now() + o.deadlineMs };
  const out = openSync(paths.updater.log, "a", 0o600);
  try {
    const child = Bun.spawn([process.execPath, ...updaterArgv(cfg), "--watch-self-update"], {
      cwd: paths.root,
      detached: true,
      stdin: "ignore",
      stdout: out,
      stderr: out,
      env: { ...updaterEnv(cfg), [WATCH_ENV]: JSON.stringify(task) },
    });
    child.unref();
    log.info(`self-update watchdog pid ${child.pid}: the new updater has ${Math.round(o.deadlineMs / 1000)} s to confirm itself`);
  } catch (e) {
    log.error("could not start the self-update watchdog; the new updater runs unwatched:", e);
  } finally {
    closeSync(out);
  }
}

/**
 * Marks where the new updater's words end (the log's size and the time),
 * before the watchdog and the previous updater write theirs: what the
 * previous one quotes on start (self.ts).
 */
function endTrial(paths: InstallPaths): void {
  try {
    const raw = JSON.parse(readFileSync(paths.updater.selfUpdate, "utf8")) as Record<string, unknown>;
    if (raw.outcome !== "trial") return;
    let size = 0;
    try { size = statSync(paths.updater.log).size; } catch {}
    writeFileAtomic(paths.updater.selfUpdate, `${JSON.stringify({ ...raw, log_end: size, ended_at: new Date().toISOString() })}\n`, 0o600);
  } catch {}
}

function confirmed(paths: InstallPaths, target: string): boolean {
  try {
    const r = SelfUpdateRecord.safeParse(JSON.parse(readFileSync(paths.updater.selfUpdate, "utf8")));
    return r.success && r.data.target === target && r.data.outcome === "confirmed";
  } catch {
    return false;
  }
}

/** The watchdog's whole life (`decnet updater … --watch-self-update`). */
export async function watchSelfUpdate(cfg: ResolvedUpdaterConfig, paths: InstallPaths, log: Logger): Promise<void> {
  const parsed = Watch.safeParse((() => { try { return JSON.parse(env(WATCH_ENV) ?? ""); } catch { return null; } })());
  if (!parsed.success) {
    log.error(`--watch-self-update needs ${WATCH_ENV}; nothing to watch`);
    return;
  }
  const w = parsed.data;
  const updater = { pid: w.pid, start: w.start };
  while (Date.now() < w.deadline && isSame(updater)) {
    if (confirmed(paths, w.target)) return;
    await Bun.sleep(100);
  }
  if (confirmed(paths, w.target)) return;
  endTrial(paths);
  if (isSame(updater)) {
    log.warn(`self-update to ${w.target.slice(0, 12)}: the new updater (pid ${w.pid}) did not confirm itself in time; killing it`);
    signalProc(updater, "SIGKILL");
    while (isSame(updater)) await Bun.sleep(20);
  } else {
    log.warn(`self-update to ${w.target.slice(0, 12)}: the new updater (pid ${w.pid}) died before it confirmed itself`);
  }
  // Under systemd, Restart= starts the unit's ExecStart (updater/current: the previous release).
  if (env("INVOCATION_ID")) return;
  const out = openSync(paths.updater.log, "a", 0o600);
  try {
    const { [WATCH_ENV]: _task, [GUARD_FDS_ENV]: _guards, ...rest } = updaterEnv(cfg);
    const child = Bun.spawn([w.exe, ...updaterArgv(cfg)], { cwd: paths.root, detached: true, stdin: "ignore", stdout: out, stderr: out, env: rest });
    child.unref();
    log.warn(`started the previous updater again (pid ${child.pid}, ${w.exe})`);
  } finally {
    closeSync(out);
  }
}
