/**
 * --daemon: start this same program again, detached (own session), output
 * appended to a log file; return its pid once it answers /health on its
 * control socket, or fail with the log's tail.
 */
import { closeSync, openSync, readFileSync } from "node:fs";
import { localHealth } from "./control-socket.ts";
import { envSnapshot } from "./env.ts";
import { DecnetError } from "./errors.ts";
import { timeouts } from "./timeouts.ts";
import { selfArgv } from "./build-info.ts";

export function logTail(file: string, lines = 15): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

export interface DaemonizeOptions {
  /** Arguments after the program, without --daemon. */
  args: string[];
  logFile: string;
  sock: string;
  cwd: string;
}

export async function daemonize(o: DaemonizeOptions): Promise<number> {
  const fd = openSync(o.logFile, "a", 0o600);
  const child = Bun.spawn([...selfArgv(), ...o.args], {
    cwd: o.cwd,
    detached: true,
    stdin: "ignore",
    stdout: fd,
    stderr: fd,
    env: envSnapshot(),
  });
  child.unref();
  closeSync(fd);
  const deadline = Date.now() + timeouts.daemonStart();
  let wait = 20;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new DecnetError("failed", `daemon exited at start (${child.exitCode ?? child.signalCode}); log ${o.logFile}:\n${logTail(o.logFile)}`);
    }
    try {
      const h = await localHealth(o.sock, timeouts.localHealth());
      if (h.pid === child.pid) return child.pid;
    } catch {}
    await Bun.sleep(wait);
    wait = Math.min(wait * 2, 250);
  }
  try { process.kill(child.pid, "SIGKILL"); } catch {}
  throw new DecnetError("failed", `daemon did not answer within ${timeouts.daemonStart()} ms; log ${o.logFile}:\n${logTail(o.logFile)}`, {
    hint: "raise DECNET_DAEMON_START_TIMEOUT_MS if the machine is slow",
  });
}

/** The command line minus --daemon, for the detached copy. */
export function withoutDaemonFlag(argv: string[]): string[] {
  return argv.filter((a) => a !== "--daemon" && a !== "--daemon=true");
}
