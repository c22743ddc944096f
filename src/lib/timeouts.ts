/**
 * Every timeout decnet uses, as a named constant, with the env variable (or
 * flag) that raises it. Read once, at the point of use.
 */
import { env } from "./env.ts";

function ms(name: string, fallback: number): number {
  const raw = env(name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}

export const timeouts = {
  /** Updater: how long the agent probe keeps trying. DECNET_PROBE_TIMEOUT_MS. */
  probe: () => ms("DECNET_PROBE_TIMEOUT_MS", 10_000),
  /** Updater: SIGTERM → SIGKILL grace for the agent. DECNET_STOP_TIMEOUT_MS. */
  stop: () => ms("DECNET_STOP_TIMEOUT_MS", 10_000),
  /** Updater: `decnet version --json` install check. DECNET_INSTALL_CHECK_TIMEOUT_MS. */
  installCheck: () => ms("DECNET_INSTALL_CHECK_TIMEOUT_MS", 15_000),
  /** Master: connect + small request (health, releases, rollback). DECNET_REQUEST_TIMEOUT_MS. */
  request: () => ms("DECNET_REQUEST_TIMEOUT_MS", 10_000),
  /** Master: rollback includes a restart and a probe. DECNET_ROLLBACK_TIMEOUT_MS. */
  rollback: () => ms("DECNET_ROLLBACK_TIMEOUT_MS", 60_000),
  /**
   * Master: a whole /update. Install, restart and up to two probes, plus the
   * upload at a floor of 1 MB/s. DECNET_UPLOAD_TIMEOUT_MS sets the fixed part.
   */
  upload: (bytes: number) => ms("DECNET_UPLOAD_TIMEOUT_MS", 90_000) + Math.ceil(bytes / 1_000),
  /** Master: after /update-self, wait for /health to report the new release (or the old one back). */
  selfUpdate: () => ms("DECNET_SELF_UPDATE_TIMEOUT_MS", 45_000),
  /**
   * Updater: a re-executed updater must serve and confirm itself within this,
   * or the watchdog puts the previous one back. DECNET_SELF_UPDATE_CONFIRM_MS.
   */
  selfConfirm: () => ms("DECNET_SELF_UPDATE_CONFIRM_MS", 20_000),
  /** --daemon: how long to wait for the detached daemon to answer. DECNET_DAEMON_START_TIMEOUT_MS. */
  daemonStart: () => ms("DECNET_DAEMON_START_TIMEOUT_MS", 15_000),
  /** Updater: an upload that sends nothing for this long is dropped. DECNET_UPLOAD_STALL_MS. */
  uploadStall: () => ms("DECNET_UPLOAD_STALL_MS", 60_000),
  /** Updater: after the stop grace, how long the agent port may stay held before a stop fails. */
  portRelease: () => timeouts.stop() + 5_000,
  /** Updater: systemctl show / reset-failed, journalctl: a local D-Bus call, answered in milliseconds. */
  systemctlQuery: () => 5_000,
  /** Updater: a unit that says TimeoutStopSec=infinity is not waited for longer than this. */
  systemctlMaxWait: () => 300_000,
  /** Updater: a local /health over a unix socket (agent.sock, updater.sock). */
  localHealth: () => 1_000,
  /** Updater: /health's own look at the agent; short, /health must stay quick. */
  healthAgent: () => 500,
  /** Updater: the 202 of /update-self gets this long on the wire before the re-exec. */
  reexecDelay: () => 200,
  /**
   * Master: one host's answers to `swarm status` (a dead host costs this
   * once, concurrently with the rest). `--timeout-ms` or DECNET_STATUS_TIMEOUT_MS.
   */
  status: () => ms("DECNET_STATUS_TIMEOUT_MS", 3_000),
  /** Master: `swarm status --watch` redraws this often. */
  statusWatch: () => 2_000,
  /** Master: opening GET /logs (the stream itself, with -f, has no deadline). */
  logsOpen: () => ms("DECNET_REQUEST_TIMEOUT_MS", 10_000),
  /** Updater: how often a followed log file is looked at for new lines. */
  logPoll: () => 250,
  /** Agent: one `docker compose` call. */
  compose: () => 300_000,
  /** Master: `version --json` of an executable being packed. */
  packAsk: () => 15_000,
  /** Master: `bun build.ts` of the working tree. */
  build: () => 300_000,
} as const;
