/**
 * Stopping and starting this worker's agent. Finds it by agent.pid and by a
 * /proc scan (a `decnet agent` listening on this worker's address and port,
 * or whose executable, cwd or --install-dir is this install), never another
 * install's. A stop is complete only when no process holds the agent port.
 */
import { closeSync, openSync, readFileSync, statSync } from "node:fs";
import { basename, resolve } from "node:path";
import { writeFileAtomic } from "../../lib/atomic.ts";
import { agentArgv, type ResolvedUpdaterConfig } from "../../lib/config.ts";
import { envSnapshot } from "../../lib/env.ts";
import { DecnetError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { type InstallPaths, RELEASE_BINARY } from "../../lib/paths.ts";
import { allPids, cmdline, isAlive, listeningInodes, pidsHoldingSockets, readLink } from "../../lib/procfs.ts";
import { run } from "../../lib/proc.ts";
import { timeouts } from "../../lib/timeouts.ts";
import { join } from "node:path";

const under = (p: string | null, dir: string) => p !== null && (p === dir || p.startsWith(`${dir}/`));

export class Supervisor {
  constructor(
    private cfg: ResolvedUpdaterConfig,
    private paths: InstallPaths,
    private log: Logger,
  ) {}

  private pidFromFile(): number | null {
    try {
      const n = Number(readFileSync(this.paths.agentPid, "utf8").trim());
      return Number.isInteger(n) && n > 1 ? n : null;
    } catch {
      return null;
    }
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

  /** Is `pid` a `decnet agent` belonging to this worker? */
  isOurs(pid: number, holders = this.portHolders()): boolean {
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
    const found = new Set<number>();
    const fromFile = this.pidFromFile();
    if (fromFile && this.isOurs(fromFile, holders)) found.add(fromFile);
    for (const pid of allPids()) if (pid !== process.pid && this.isOurs(pid, holders)) found.add(pid);
    return [...found];
  }

  /** SIGTERM, wait (a zombie counts as dead), then SIGKILL whoever is left. */
  private async terminate(pids: number[]): Promise<void> {
    for (const pid of pids) this.signal(pid, "SIGTERM");
    const deadline = Date.now() + timeouts.stop();
    while (pids.some(isAlive) && Date.now() < deadline) await Bun.sleep(20);
    for (const pid of pids.filter(isAlive)) {
      this.log.warn(`agent pid ${pid} ignored SIGTERM for ${timeouts.stop()} ms; sending SIGKILL`);
      this.signal(pid, "SIGKILL");
    }
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
    const stopped = this.agents();
    await this.terminate(stopped);
    const deadline = Date.now() + timeouts.stop() + 5_000;
    while (this.portBusy()) {
      const holders = this.portHolders();
      if (Date.now() > deadline) {
        throw new DecnetError("install_failed", `agent port ${this.cfg.host}:${this.cfg.agentPort} is still held by pid ${holders.join(", ") || "?"}`, {
          hint: "a process that is not this worker's decnet agent holds the port; stop it or pick another --agent-port",
          detail: { holders: holders.map((p) => ({ pid: p, argv: cmdline(p) })) },
        });
      }
      const ours = holders.filter((p) => !stopped.includes(p) && this.isOurs(p, holders));
      if (ours.length) {
        await this.terminate(ours);
        stopped.push(...ours);
      } else await Bun.sleep(20);
    }
    return stopped;
  }

  private signal(pid: number, sig: NodeJS.Signals): void {
    try { process.kill(pid, sig); } catch {}
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
      writeFileAtomic(this.paths.agentPid, `${child.pid}\n`, 0o644, { durable: false }); // a pid means nothing after a power cut
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
