/**
 * Stopping and starting this worker's agent, by one of two strategies:
 * spawn (the default: the updater starts `current/decnet agent` itself,
 * detached, output in agent.spawn.log) or systemd (systemd-supervisor.ts).
 * Spawn: signals go to exact processes (signal.ts); a stop is complete only
 * when none of ours holds the agent port; a foreign process that would keep
 * the new agent from binding is found before the running agent is stopped.
 */
import { closeSync, openSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { agentArgv, type ResolvedUpdaterConfig } from "../../lib/config.ts";
import { envSnapshot } from "../../lib/env.ts";
import type { Logger } from "../../lib/log.ts";
import { type InstallPaths, RELEASE_BINARY } from "../../lib/paths.ts";
import { writePidFile } from "../../lib/pidfile.ts";
import { readLink } from "../../lib/procfs.ts";
import { isSame, type Proc, procOf, signalProc } from "../../lib/signal.ts";
import { timeouts } from "../../lib/timeouts.ts";
import { AgentFinder } from "./agent-finder.ts";
import type { AgentControl } from "./ops.ts";
import { SystemdSupervisor } from "./systemd-supervisor.ts";

/**
 * The strategy `--agent-supervisor` names. `guarded` says whether the
 * updater holds its guard on the agent port (port-guard.ts).
 */
export function createSupervisor(cfg: ResolvedUpdaterConfig, paths: InstallPaths, log: Logger, guarded: () => boolean = () => false): AgentControl {
  return cfg.agentSupervisor === "systemd" ? new SystemdSupervisor(cfg, paths, log) : new SpawnSupervisor(cfg, paths, log, guarded);
}

export class SpawnSupervisor implements AgentControl {
  private finder: AgentFinder;

  constructor(
    private cfg: ResolvedUpdaterConfig,
    private paths: InstallPaths,
    private log: Logger,
    private guarded: () => boolean = () => false,
  ) {
    this.finder = new AgentFinder(cfg, paths);
  }

  agents(): number[] {
    return this.finder.agents().map((p) => p.pid);
  }

  /**
   * Kills the agent a crashed operation started, if it is still that process
   * (`start` from the journal) — or, for a journal without one, if it is ours.
   */
  killUnconfirmed(pid: number, start: number | null): void {
    const p = start === null ? (this.finder.isOurs(pid) ? procOf(pid) : null) : { pid, start };
    if (p) signalProc(p, "SIGKILL");
  }

  /** SIGTERM, wait (a zombie counts as dead), then SIGKILL whoever is left — each exactly the process found. */
  private async terminate(procs: Proc[]): Promise<void> {
    for (const p of procs) signalProc(p, "SIGTERM");
    const deadline = Date.now() + timeouts.stop();
    while (procs.some(isSame) && Date.now() < deadline) await Bun.sleep(20);
    for (const p of procs.filter(isSame)) {
      this.log.warn(`agent pid ${p.pid} ignored SIGTERM for ${timeouts.stop()} ms; sending SIGKILL`);
      signalProc(p, "SIGKILL");
    }
  }

  /**
   * Stops every agent of this worker. Complete only when none of ours holds
   * the agent port: a `decnet agent` still holding it (started by hand, no
   * pid file, elsewhere) is stopped too.
   */
  async stop(): Promise<number[]> {
    // While the updater holds its guard on the agent port (port-guard.ts), no
    // other user's socket can conflict with the new agent's bind: a foreign
    // holder is one that cannot (an IPV6_V6ONLY listener on [::]). Without
    // the guard, a foreign holder may conflict: refuse now, with the running
    // agent still running.
    if (!this.guarded()) {
      const foreign = this.finder.foreignHolders();
      if (foreign.length) throw this.finder.heldBy(foreign);
    }
    const stopped = this.finder.agents();
    await this.terminate(stopped);
    const deadline = Date.now() + timeouts.portRelease();
    for (;;) {
      const holders = this.finder.portHolders();
      const ours = holders.filter((p) => this.finder.isOurs(p, holders));
      if (!ours.length) break;
      if (Date.now() > deadline) throw this.finder.heldBy(ours, true);
      const left = ours.filter((p) => !stopped.some((s) => s.pid === p)).map(procOf).filter((p): p is Proc => p !== null);
      if (left.length) {
        await this.terminate(left);
        stopped.push(...left);
      } else await Bun.sleep(20);
    }
    return stopped.map((p) => p.pid);
  }

  /** Size of agent.spawn.log now, so a probe can quote only what follows. */
  private logOffset(): number {
    try {
      return statSync(this.paths.agentSpawnLog).size;
    } catch {
      return 0;
    }
  }

  logSince(offset: number, max = 8192): string {
    try {
      const text = readFileSync(this.paths.agentSpawnLog).subarray(offset).toString("utf8");
      return text.length > max ? text.slice(-max) : text;
    } catch {
      return "";
    }
  }

  /** Starts `<install-dir>/current/decnet agent …` detached; returns the serving pid. */
  private start(): number {
    const fd = openSync(this.paths.agentSpawnLog, "a", 0o600);
    try {
      const child = Bun.spawn(
        [join(this.paths.current, RELEASE_BINARY), ...agentArgv({ ...this.cfg, installDir: this.paths.root })],
        { cwd: this.paths.root, detached: true, stdin: "ignore", stdout: fd, stderr: fd, env: envSnapshot() },
      );
      child.unref();
      writePidFile(this.paths.agentPid, child.pid);
      this.log.info(`started agent pid ${child.pid} from ${readLink(this.paths.current) ?? "?"}`);
      return child.pid;
    } finally {
      closeSync(fd);
    }
  }

  /** Stop, then start; `logOffset` marks where the new agent's output begins. */
  async restart(): Promise<{ pid: number | null; logOffset: number }> {
    const stopped = await this.stop();
    if (stopped.length) this.log.info(`stopped agent pid ${stopped.join(", ")}`);
    const logOffset = this.logOffset();
    return { pid: this.start(), logOffset };
  }
}
