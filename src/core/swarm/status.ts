/**
 * `swarm status`: every selected host's updater asked for its /health at
 * once (a bounded number in flight), each under a short timeout, and one
 * row per host from that answer and the registry: reachable, releases,
 * agent health and uptime, drift from the release last pushed there, the
 * operation in flight, days until its certificates expire, free disk, and
 * the last push's result.
 */
import { updaterHealthWithin } from "../../client/updater.ts";
import type { UpdaterHealth } from "../../protocol/updater.ts";
import { errorMessage, RemoteError, usageError } from "../../lib/errors.ts";
import { timeouts } from "../../lib/timeouts.ts";
import { ensureMasterIdentity } from "../identity.ts";
import { type Host, Registry } from "../registry.ts";
import { selectHosts } from "./hosts.ts";
import { mapLimit } from "./update.ts";

export const DEFAULT_STATUS_CONCURRENCY = 32;
/** A certificate with fewer days left than this is shown as expiring. */
export const EXPIRING_DAYS = 30;

export interface CertState {
  not_after: string;
  /** Whole days left by the master's clock (negative once expired). */
  days_left: number;
}

export interface StatusRow {
  host: string;
  address: string;
  /** The updater answered /health. */
  reachable: boolean;
  /** Why it did not: the transport or error code and its message. */
  error: { code: string; message: string; hint: string | null } | null;
  updater: { version: string; release: string | null; pid: number } | null;
  agent: { healthy: boolean; release: string | null; pid: number | null; uptime_s: number | null } | null;
  /** The release the registry says was last pushed there (successfully). */
  last_release: string | null;
  /** The agent runs something else than last_release; null when either is unknown. */
  drift: boolean | null;
  busy: string | null;
  certificates: { updater: CertState | null; agent: CertState | null } | null;
  disk: { free_bytes: number; size_bytes: number } | null;
  last_push: { result: string; at: string | null } | null;
  /** Reachable, and its agent healthy: what the exit code is made of. */
  healthy: boolean;
  ms: number;
}

export interface StatusReport {
  at: string;
  /** The whole call, all hosts: bounded by the per-host timeout, not by the number of hosts. */
  duration_ms: number;
  timeout_ms: number;
  hosts: StatusRow[];
}

export interface StatusOptions {
  /** Host names; none and no `all` means every host. */
  hosts: string[];
  all: boolean;
  concurrency?: number;
  /** Per host; default timeouts.status(). */
  timeoutMs?: number;
  now?: () => Date;
}

function cert(notAfter: string | null | undefined, now: Date): CertState | null {
  if (!notAfter) return null;
  const t = Date.parse(notAfter);
  return Number.isFinite(t) ? { not_after: notAfter, days_left: Math.floor((t - now.getTime()) / 86_400_000) } : null;
}

/** One host's row from its /health answer (or the failure to get one) and its registry entry. */
export function statusRow(h: Host, answer: { health: UpdaterHealth } | { error: unknown }, ms: number, now: Date): StatusRow {
  const common = { host: h.name, address: h.address, last_release: h.last_release, last_push: h.last_result ? { result: h.last_result, at: h.last_pushed_at } : null, ms: Math.round(ms) };
  if ("error" in answer) {
    const e = answer.error;
    const error = e instanceof RemoteError ? { code: e.code, message: e.message, hint: e.hint ?? null } : { code: "error", message: errorMessage(e), hint: null };
    return { ...common, reachable: false, error, updater: null, agent: null, drift: null, busy: null, certificates: null, disk: null, healthy: false };
  }
  const u = answer.health;
  const running = u.agent.release;
  return {
    ...common,
    reachable: true,
    error: null,
    updater: { version: u.version, release: u.release, pid: u.pid },
    agent: { healthy: u.agent.healthy, release: running, pid: u.agent.pid, uptime_s: u.agent.uptime_s ?? null },
    drift: h.last_release === null || running === null ? null : running !== h.last_release,
    busy: u.busy,
    certificates: u.certificates ? { updater: cert(u.certificates.updater, now), agent: cert(u.certificates.agent, now) } : null,
    disk: u.disk ?? null,
    healthy: u.agent.healthy,
  };
}

export async function status(o: StatusOptions): Promise<StatusReport> {
  const concurrency = o.concurrency ?? DEFAULT_STATUS_CONCURRENCY;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw usageError("--concurrency takes a whole number ≥ 1");
  const timeoutMs = o.timeoutMs ?? timeouts.status();
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw usageError("--timeout-ms takes a whole number of milliseconds ≥ 1");
  let hosts: Host[];
  {
    using reg = new Registry();
    hosts = await selectHosts(reg, o.hosts, o.all || o.hosts.length === 0);
  }
  await ensureMasterIdentity();
  const now = o.now ?? (() => new Date());
  const t0 = performance.now();
  const at = now();
  const rows = await mapLimit(hosts, concurrency, async (h) => {
    const t = performance.now();
    const answer = await updaterHealthWithin({ host: h.name, address: h.address, port: h.updater_port }, timeoutMs).then(
      (health) => ({ health }),
      (error: unknown) => ({ error }),
    );
    return statusRow(h, answer, performance.now() - t, now());
  });
  return { at: at.toISOString(), duration_ms: Math.round(performance.now() - t0), timeout_ms: timeoutMs, hosts: rows };
}
