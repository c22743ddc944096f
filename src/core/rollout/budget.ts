/**
 * The failure budget (DESIGN §12): what a host's row counts as — a release
 * failure, or a host that could not be reached, which is not the release's
 * fault (Nomad #12940) — the tallies, and whether they exceed the limits.
 */
import type { HostResult } from "../swarm/push.ts";
import type { HostState, Limits, RolloutHost } from "./store.ts";

/**
 * Codes that say the push never got a verdict on the release: refused,
 * timed out, a failed handshake or a wrong certificate (transport), a
 * worker busy with another operation (423), or a host decommissioned
 * between a rollout's runs.
 */
const NOT_THE_RELEASE = new Set(["unreachable", "timeout", "handshake", "identity", "busy", "decommissioned", "leased"]);

/**
 * What a finished push counts as. A release failure is a host that rolled
 * back, failed the install check, was unhealthy after the switch, refused
 * the release (signature, floor, archive), or whose updater failed on it
 * (--include-self); unreachable is only a failure to reach the host before
 * any of that; interrupted, a push the operator aborted (second Ctrl-C).
 */
export function classify(r: HostResult): Extract<HostState, "updated" | "failed" | "unreachable" | "interrupted"> {
  if (r.error_code === "aborted") return "interrupted";
  if (r.agent === "updated") return r.self === "error" || r.self === "rolled-back" ? "failed" : "updated";
  return r.error_code !== null && NOT_THE_RELEASE.has(r.error_code) ? "unreachable" : "failed";
}

export interface Tally {
  updated: number;
  failed: number;
  unreachable: number;
  reverted: number;
  /** Not started, in flight, or interrupted: what a resume would start. */
  pending: number;
}

/** Every host of a rollout, by kind. */
export function tally(hosts: Array<Pick<RolloutHost, "state">>): Tally {
  const t: Tally = { updated: 0, failed: 0, unreachable: 0, reverted: 0, pending: 0 };
  for (const h of hosts) {
    if (h.state === "updated" || h.state === "failed" || h.state === "unreachable" || h.state === "reverted") t[h.state]++;
    else t.pending++;
  }
  return t;
}

/**
 * Why the budget is exceeded, or null. Counts only the hosts that finished
 * in runs from `budgetFrom` on (a resumed halt starts a fresh count: the
 * operator has looked at the failures that halted it).
 */
export function overBudget(hosts: RolloutHost[], limits: Limits, budgetFrom: number): string | null {
  const counted = hosts.filter((h) => (h.run ?? 0) >= budgetFrom);
  const failed = counted.filter((h) => h.state === "failed").length;
  const unreachable = counted.filter((h) => h.state === "unreachable").length;
  if (limits.failures !== null && failed > limits.failures) return `${failed} release failure${failed > 1 ? "s" : ""}, more than the ${limits.failures} allowed`;
  if (limits.unreachable !== null && unreachable > limits.unreachable) return `${unreachable} host${unreachable > 1 ? "s" : ""} unreachable, more than the ${limits.unreachable} allowed`;
  return null;
}
