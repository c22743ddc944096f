/**
 * Stopping and starting this worker's agent. Finds it by agent.pid (pid and
 * start time: the process this updater started, whatever it exec'd into) and
 * by a /proc scan (a `decnet agent` listening on this worker's address and
 * port, or whose executable, cwd or --install-dir is this install), never
 * another install's, never another uid's. Signals go to exact processes
 * (signal.ts). A stop is complete only when none of ours holds the agent
 * port; a foreign process that would keep the new agent from binding is
 * found before the running agent is stopped, not after. Under systemd:
 * systemctl, and the agent's output from its journal.
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
    if (this.cfg.agentSupervisor === "systemd") return this.journalTail(max);
    try {
      const text = readFileSync(this.paths.agentSpawnLog).subarray(offset).toString("utf8");
      return text.length > max ? text.slice(-max) : text;
    } catch {
      return "";
    }
  }

  /** Starts `<install-dir>/current/decnet agent …` detached; returns the serving pid. */
  async start(): Promise<number | null> {
    if (this.cfg.agentSupervisor === "systemd") return this.systemdStart();
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

  // ---- systemd (--agent-supervisor systemd): the unit decnet-agent.service ----

  /** The agent unit's invocation this updater last started: its journal is that agent's output. */
  private invocation: string | null = null;

  private async unitProps(names: string[]): Promise<Record<string, string>> {
    const r = await run(["systemctl", "show", ...names.flatMap((n) => ["-p", n]), AGENT_UNIT], { timeoutMs: SYSTEMCTL_QUERY_MS });
    if (r.code !== 0) {
      const why = (r.spawnError ?? r.stderr).trim() || (r.timedOut ? `no answer within ${SYSTEMCTL_QUERY_MS} ms` : `exit ${r.code}`);
      throw new DecnetError("install_failed", `systemctl show ${AGENT_UNIT} failed: ${why}`);
    }
    const props: Record<string, string> = {};
    for (const line of r.stdout.split("\n")) {
      const eq = line.indexOf("=");
      if (eq > 0) props[line.slice(0, eq)] = line.slice(eq + 1);
    }
    return props;
  }

  private async noteInvocation(): Promise<number | null> {
    const p = await this.unitProps(["ExecMainPID", "InvocationID"]);
    this.invocation = /^[0-9a-f]{32}$/.test(p.InvocationID ?? "") ? p.InvocationID! : null;
    const pid = Number(p.ExecMainPID);
    return pid > 0 ? pid : null;
  }

  /**
   * restart, then the new main process. Type=exec makes `restart` return once
   * the agent's execve succeeded; ExecMainPID still names that process if it
   * has already exited (MainPID would be 0), so the probe sees it exit at
   * once instead of waiting for an answer that never comes.
   */
  private async systemdStart(): Promise<number | null> {
    await this.systemctl("restart");
    const pid = await this.noteInvocation();
    this.log.info(`started ${AGENT_UNIT} pid ${pid ?? "?"} (invocation ${this.invocation ?? "?"}) from ${readLink(this.paths.current) ?? "?"}`);
    return pid;
  }

  /**
   * The last `max` characters of what the agent's last invocation wrote to
   * the journal (its own lines only: the master quotes the last one as what
   * the agent said). Only read when a start or a probe failed; synchronous
   * because the probe's transcript is.
   */
  private journalTail(max: number): string {
    if (!this.invocation) return "";
    // What the agent wrote just before it exited may still be in journald's queue.
    Bun.spawnSync(["journalctl", "--sync"], { stdout: "ignore", stderr: "ignore", timeout: SYSTEMCTL_QUERY_MS });
    const r = Bun.spawnSync(
      ["journalctl", "--no-pager", "-q", "-o", "cat", "-n", "200", `_SYSTEMD_INVOCATION_ID=${this.invocation}`],
      { stdout: "pipe", stderr: "pipe", timeout: SYSTEMCTL_QUERY_MS },
    );
    const text = r.success ? r.stdout.toString() : `(journalctl failed: ${r.stderr.toString().trim() || `exit ${r.exitCode}`})\n`;
    return text.length > max ? text.slice(-max) : text;
  }

  /**
   * systemctl stop|restart decnet-agent. reset-failed first: a unit that
   * failed, or hit its start rate limit, refuses to start (units from an
   * older install.sh keep the default limit of 5 starts in 10 s, and every
   * push counts). The wait is the unit's own stop timeout plus 5 s, so
   * systemd's SIGKILL always comes first; a systemctl that fails or still
   * does not return is reported as that, with both timeouts, and with the
   * journal of the invocation that failed to start.
   */
  private async systemctl(verb: "stop" | "restart"): Promise<void> {
    await run(["systemctl", "reset-failed", AGENT_UNIT], { timeoutMs: SYSTEMCTL_QUERY_MS });
    const unitStop = await this.unitProps(["TimeoutStopUSec"]).then((p) => parseTimespan(p.TimeoutStopUSec ?? ""), () => null);
    const waitMs = Math.min(Math.max(unitStop ?? 0, timeouts.stop()), MAX_SYSTEMCTL_WAIT_MS) + 5_000;
    const r = await run(["systemctl", verb, AGENT_UNIT], { timeoutMs: waitMs });
    if (r.code === 0 && !r.timedOut) return;
    const said = (r.spawnError ?? r.stderr).trim();
    const stopSec = unitStop === null ? "unknown" : unitStop === Number.POSITIVE_INFINITY ? "infinity" : `${unitStop / 1000} s`;
    const why = r.timedOut
      ? `did not return within ${waitMs} ms (the unit's TimeoutStopSec is ${stopSec})`
      : `failed (exit ${r.code})${said ? `: ${said}` : ""}`;
    let logTail = "";
    if (verb === "restart" && !r.timedOut) {
      await this.noteInvocation().catch(() => null);
      logTail = this.journalTail(4096);
    }
    this.log.error(`systemctl ${verb} ${AGENT_UNIT} ${why}`);
    throw new DecnetError("install_failed", `systemctl ${verb} ${AGENT_UNIT} ${why}`, {
      hint: `see \`systemctl status ${AGENT_UNIT}\` and \`journalctl -u ${AGENT_UNIT}\` on the worker`,
      detail: { systemctl: { verb, exit: r.code, timed_out: r.timedOut, waited_ms: waitMs, unit_stop_timeout: stopSec, stderr: said }, log_tail: logTail },
    });
  }
}

const AGENT_UNIT = "decnet-agent.service";
/** systemctl show / reset-failed / journalctl: a local D-Bus call, answered in milliseconds. */
const SYSTEMCTL_QUERY_MS = 5_000;
/** A unit that says TimeoutStopSec=infinity is not waited for forever. */
const MAX_SYSTEMCTL_WAIT_MS = 300_000;

/** systemd's time span as `systemctl show` prints it ("10s", "1min 30s", "500ms", "infinity") → ms; null if unparsable. */
export function parseTimespan(text: string): number | null {
  const t = text.trim();
  if (t === "infinity") return Number.POSITIVE_INFINITY;
  const unit: Record<string, number> = { us: 0.001, ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 };
  let total = 0;
  let rest = t;
  while (rest) {
    const m = /^(\d+(?:\.\d+)?)(us|ms|s|min|h|d)\s*/.exec(rest);
    if (!m) return null;
    total += Number(m[1]) * unit[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  return t ? total : null;
}
