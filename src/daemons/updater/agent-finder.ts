/**
 * Which processes are this worker's agent: the one agent.pid names (pid and
 * start time: the process the updater started, whatever it exec'd into),
 * and `decnet agent` processes of this install (listening on this worker's
 * address and agent port, or whose executable, cwd or --install-dir is this
 * install) — never another install's, never another uid's. Both
 * supervisor strategies (spawn, systemd) find the agent this way.
 */
import { basename, resolve } from "node:path";
import type { ResolvedUpdaterConfig } from "../../lib/config.ts";
import { DecnetError } from "../../lib/errors.ts";
import type { InstallPaths } from "../../lib/paths.ts";
import { readPidFile } from "../../lib/pidfile.ts";
import { allPids, cmdline, isAlive, listeningInodes, pidsHoldingSockets, readLink, startTime, uidOf } from "../../lib/procfs.ts";
import { type Proc, procOf } from "../../lib/signal.ts";

const under = (p: string | null, dir: string) => p !== null && (p === dir || p.startsWith(`${dir}/`));
const euid = () => (typeof process.geteuid === "function" ? process.geteuid() : 0);

export class AgentFinder {
  constructor(
    private cfg: Pick<ResolvedUpdaterConfig, "host" | "agentPort">,
    private paths: InstallPaths,
  ) {}

  /** The agent the pid file names, if that exact process is alive. */
  private fromPidFile(): Proc | null {
    const f = readPidFile(this.paths.agentPid);
    const now = f ? procOf(f.pid) : null;
    return now && (f!.start === null || f!.start === now.start) ? now : null;
  }

  /**
   * Pids holding this worker's agent port (any process: a port is a port).
   * Walks every process's fds, so only when the port is actually held.
   */
  portHolders(): number[] {
    const inodes = listeningInodes(this.cfg.host, this.cfg.agentPort);
    return inodes.size === 0 ? [] : pidsHoldingSockets(inodes).filter(isAlive);
  }

  /** Is `pid` this worker's agent? */
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
   * the machine, each as the process found (pid and start time): the pid
   * file's, and `decnet agent` processes whose executable, cwd or
   * --install-dir is this install. (Port holders come from portHolders().)
   */
  agents(holders: number[] = []): Proc[] {
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

  /** Processes that hold this worker's agent port and are not its agent. */
  foreignHolders(): number[] {
    const holders = this.portHolders();
    return holders.filter((p) => !this.isOurs(p, holders));
  }

  /** The refusal when the agent port is held by `pids`: a foreign process, or an agent of ours that would not go. */
  heldBy(pids: number[], ours = false): DecnetError {
    const what = ours ? `is still held by this worker's agent (pid ${pids.join(", ")}) after SIGKILL` : `is held by pid ${pids.join(", ")}, which is not this worker's agent; nothing was stopped`;
    return new DecnetError("install_failed", `agent port ${this.cfg.host}:${this.cfg.agentPort} ${what}`, {
      hint: ours ? "look at that process on the worker (`decnet swarm logs` shows the agent's output)" : "stop that process or pick another --agent-port",
      detail: { holders: pids.map((p) => ({ pid: p, uid: uidOf(p), argv: cmdline(p) })) },
    });
  }
}
