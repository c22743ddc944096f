/**
 * --agent-supervisor systemd: the agent is the unit decnet-agent.service.
 * Started and stopped through systemctl (reset-failed first: a unit that
 * failed or hit its start limit refuses to start), its main process read
 * back from the unit, and its output — for a probe's transcript — from the
 * journal of the invocation this updater started.
 */
import type { ResolvedUpdaterConfig } from "../../lib/config.ts";
import { DecnetError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import type { InstallPaths } from "../../lib/paths.ts";
import { run } from "../../lib/proc.ts";
import { readLink } from "../../lib/procfs.ts";
import { procOf, signalProc } from "../../lib/signal.ts";
import { timeouts } from "../../lib/timeouts.ts";
import { AgentFinder } from "./agent-finder.ts";
import type { AgentControl } from "./ops.ts";

const AGENT_UNIT = "decnet-agent.service";

export class SystemdSupervisor implements AgentControl {
  private finder: AgentFinder;
  /** The agent unit's invocation this updater last started: its journal is that agent's output. */
  private invocation: string | null = null;

  constructor(
    cfg: ResolvedUpdaterConfig,
    paths: InstallPaths,
    private log: Logger,
  ) {
    this.finder = new AgentFinder(cfg, paths);
    this.current = () => readLink(paths.current);
  }

  private current: () => string | null;

  agents(): number[] {
    return this.finder.agents().map((p) => p.pid);
  }

  killUnconfirmed(pid: number, start: number | null): void {
    const p = start === null ? (this.finder.isOurs(pid) ? procOf(pid) : null) : { pid, start };
    if (p) signalProc(p, "SIGKILL");
  }

  async stop(): Promise<number[]> {
    await this.systemctl("stop");
    return [];
  }

  /**
   * restart, then the new main process. Type=exec makes `restart` return once
   * the agent's execve succeeded; ExecMainPID still names that process if it
   * has already exited (MainPID would be 0), so the probe sees it exit at
   * once instead of waiting for an answer that never comes.
   */
  async restart(): Promise<{ pid: number | null; logOffset: number }> {
    await this.systemctl("restart");
    const pid = await this.noteInvocation();
    this.log.info(`started ${AGENT_UNIT} pid ${pid ?? "?"} (invocation ${this.invocation ?? "?"}) from ${this.current() ?? "?"}`);
    return { pid, logOffset: 0 };
  }

  logSince(_offset: number, max = 8192): string {
    return this.journalTail(max);
  }

  private async unitProps(names: string[]): Promise<Record<string, string>> {
    const r = await run(["systemctl", "show", ...names.flatMap((n) => ["-p", n]), AGENT_UNIT], { timeoutMs: timeouts.systemctlQuery() });
    if (r.code !== 0) {
      const why = (r.spawnError ?? r.stderr).trim() || (r.timedOut ? `no answer within ${timeouts.systemctlQuery()} ms` : `exit ${r.code}`);
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
   * The last `max` characters of what the agent's last invocation wrote to
   * the journal (its own lines only: the master quotes the last one as what
   * the agent said). Only read when a start or a probe failed; synchronous
   * because the probe's transcript is.
   */
  private journalTail(max: number): string {
    if (!this.invocation) return "";
    // What the agent wrote just before it exited may still be in journald's queue.
    Bun.spawnSync(["journalctl", "--sync"], { stdout: "ignore", stderr: "ignore", timeout: timeouts.systemctlQuery() });
    const r = Bun.spawnSync(
      ["journalctl", "--no-pager", "-q", "-o", "cat", "-n", "200", `_SYSTEMD_INVOCATION_ID=${this.invocation}`],
      { stdout: "pipe", stderr: "pipe", timeout: timeouts.systemctlQuery() },
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
    await run(["systemctl", "reset-failed", AGENT_UNIT], { timeoutMs: timeouts.systemctlQuery() });
    const unitStop = await this.unitProps(["TimeoutStopUSec"]).then((p) => parseTimespan(p.TimeoutStopUSec ?? ""), () => null);
    const waitMs = Math.min(Math.max(unitStop ?? 0, timeouts.stop()), timeouts.systemctlMaxWait()) + 5_000;
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
