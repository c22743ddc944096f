/**
 * Stopping and starting this worker's agent. Finds it by agent.pid (pid and
 * start time: the process this updater started, whatever it exec'd into) and
 * by a /proc scan (a `decnet agent` listening on this worker's address and
 * port, or whose executable, cwd or --install-dir is this install), never
 * another install's, never another uid's. Signals go to exact processes
 * (signal.ts). A stop is complete only when none of ours holds the agent
 * port; a foreign process that would keep the new agent from binding is
 * found before the running agent is stopped, not after.
 */
import { closeSync, openSync, readFileSync, statSync } from "node:fs";
import { basename, resolve } from "node:path";
import { readPidFile, writePidFile } from "../../lib/pidfile.ts";
import { type Proc, isSame, procOf, signalProc } from "../../lib/signal.ts";
import { agentArgv, type ResolvedUpdaterConfig } from "../../lib/config.ts";
import { envSnapshot } from "../../lib/env.ts";
import { DecnetError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { type InstallPaths, RELEASE_BINARY } from "../../lib/paths.ts";
import { allPids, cmdline, isAlive, listeningInodes, pidsHoldingSockets, readLink, startTime, uidOf } from "../../lib/procfs.ts";
import { run } from "../../lib/proc.ts";
import { timeouts } from "../../lib/timeouts.ts";
import { join } from "node:path";

const under = (p: string | null, dir: string) => p !== null && (p === dir || p.startsWith(`${dir}/`));
const euid = () => (typeof process.geteuid === "function" ? process.geteuid() : 0);

export class Supervisor {
  constructor(
    private cfg: ResolvedUpdaterConfig,
    private paths: InstallPaths,
    private log: Logger,
    /** Does the updater hold its guard on the agent port (port-guard.ts)? */
    private guarded: () => boolean = () => false,
  ) {}

  /** The agent the pid file names, if that exact process is alive. */
  private fromPidFile(): Proc | null {
    const f = readPidFile(this.paths.agentPid);
    const now = f ? procOf(f.pid) : null;
    return now && (f!.start === null || f!.start === now.start) ? now : null;
  }

  /** Is anything listening on this worker's agent port? One read of /proc/net/tcp*. */
  portBusy(): boolean {
    return listeningInodes(this.cfg.host, this.cfg.agentPort).size > 0;
  }

  /**
   * Pids holding this worker's agent port (any process: a port is a port).
   * Walks every process's fds, so only when the port is actually held.
   */
  portHolders(): number[] {
    const inodes = listeningInodes(this.cfg.host, this.cfg.agentPort);
    return inodes.size === 0 ? [] : pidsHoldingSockets(inodes).filter(isAlive);
  }

  /**
   * Is `pid` this worker's agent? The process the pid file names (by pid and
   * start time), or a `decnet agent` of this install; never another uid's.
   */
  isOurs(pid: number, holders = this.portHolders()): boolean {
    if (uidOf(pid) !== euid()) return false;
    const file = readPidFile(this.paths.agentPid);
    if (file?.pid === pid && file.start !== null && file.start === startTime(pid) && isAlive(pid)) return true;
    const argv = cmdline(pid);
    // `decnet agent …`, or `<interpreter> …/decnet agent …` for a script release.
    const i = argv.indexOf("agent");
    if (i < 1 || i > 2 || !basename(argv[i - 1]!).startsWith("decnet") || !isAlive(pid)) return false;
    if (holders.includes(pid)) return true;
    const dir = this.paths.root;
    if (under(readLink(`/proc/${pid}/exe`), dir) || under(readLink(`/proc/${pid}/cwd`), dir)) return true;
    const f = argv.findIndex((a) => a === "--install-dir" || a.startsWith("--install-dir="));
    const named = f < 0 ? null : argv[f]!.includes("=") ? argv[f]!.split("=")[1]! : argv[f + 1];
    return named !== undefined && named !== null && resolve(named) === dir;
  }

  /**
   * Live agents of this worker that can be named without walking every fd on
   * the machine: the pid file's, and `decnet agent` processes whose
   * executable, cwd or --install-dir is this install. (Port holders are
   * found by stop() when the port is still held after these.)
   */
  agents(holders: number[] = []): number[] {
    return this.agentProcs(holders).map((p) => p.pid);
  }

  /** agents(), each named by pid and start time as found: what a stop signals. */
  private agentProcs(holders: number[] = []): Proc[] {
    const found = new Map<number, Proc>();
    const fromFile = this.fromPidFile();
    if (fromFile && this.isOurs(fromFile.pid, holders)) found.set(fromFile.pid, fromFile);
    for (const pid of allPids()) {
      if (pid === process.pid || found.has(pid) || !this.isOurs(pid, holders)) continue;
      const p = procOf(pid);
      if (p) found.set(pid, p);
    }
    return [...found.values()];
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
   * Kills the agent a crashed operation started, if it is still that process
   * (`start` from the journal) — or, for a journal without one, if it is ours.
   */
  killUnconfirmed(pid: number, start: number | null): void {
    const p = start === null ? (this.isOurs(pid) ? procOf(pid) : null) : { pid, start };
    if (p) signalProc(p, "SIGKILL");
  }

  /** Processes of another kind that hold this worker's agent port. */
  private foreignHolders(): number[] {
    const holders = this.portHolders();
    return holders.filter((p) => !this.isOurs(p, holders));
  }

  /**
   * Stops every agent of this worker. Complete only when nothing holds the
   * agent port: a `decnet agent` still holding it (started by hand, no pid
   * file, elsewhere) is stopped too; anything else holding it is an error.
   */
  async stop(): Promise<number[]> {
    if (this.cfg.agentSupervisor === "systemd") {
      await this.systemctl("stop");
      return [];
    }
    // While the updater holds its guard on the agent port (port-guard.ts), no
    // other user's socket can conflict with the new agent's bind: a foreign
    // holder is one that cannot (an IPV6_V6ONLY listener on [::]). Without
    // the guard, a foreign holder may conflict: refuse now, with the running
    // agent still running.
    if (!this.guarded()) {
      const foreign = this.foreignHolders();
      if (foreign.length) throw this.heldBy(foreign);
    }
    const stopped = this.agentProcs();
    await this.terminate(stopped);
    const deadline = Date.now() + timeouts.portRelease();
    for (;;) {
      const holders = this.portHolders();
      const ours = holders.filter((p) => this.isOurs(p, holders));
      if (!ours.length) break;
      if (Date.now() > deadline) throw this.heldBy(ours);
      const left = ours.filter((p) => !stopped.some((s) => s.pid === p)).map(procOf).filter((p): p is Proc => p !== null);
      if (left.length) {
        await this.terminate(left);
        stopped.push(...left);
      } else await Bun.sleep(20);
    }
    return stopped.map((p) => p.pid);
  }

  private heldBy(pids: number[]): DecnetError {
    return new DecnetError("install_failed", `agent port ${this.cfg.host}:${this.cfg.agentPort} is held by pid ${pids.join(", ")}, which is not this worker's agent; nothing was stopped`, {
      hint: "stop that process or pick another --agent-port",
      detail: { holders: pids.map((p) => ({ pid: p, uid: uidOf(p), argv: cmdline(p) })) },
    });
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
  async start(): Promise<number | null> {
    if (this.cfg.agentSupervisor === "systemd") {
      await this.systemctl("restart");
      const r = await run(["systemctl", "show", "-p", "MainPID", "--value", "decnet-agent"], { timeoutMs: 10_000 });
      const pid = Number(r.stdout.trim());
      return pid > 0 ? pid : null;
    }
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
    if (this.cfg.agentSupervisor !== "systemd") {
      const stopped = await this.stop();
      if (stopped.length) this.log.info(`stopped agent pid ${stopped.join(", ")}`);
    }
    const logOffset = this.logOffset();
    return { pid: await this.start(), logOffset };
  }

  private async systemctl(verb: string): Promise<void> {
    const r = await run(["systemctl", verb, "decnet-agent"], { timeoutMs: timeouts.stop() + 5_000 });
    if (r.code !== 0) throw new DecnetError("install_failed", `systemctl ${verb} decnet-agent failed: ${(r.spawnError ?? r.stderr).trim()}`);
  }
}
