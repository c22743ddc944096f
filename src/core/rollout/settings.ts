/**
 * The rollout flags, checked before anything else happens: `N|P%` counts
 * (resolved to host counts exactly, in integers), `--pause` durations and
 * `--canary N|HOST,...`. Every fault is a usage error of one line.
 */
import { usageError } from "../../lib/errors.ts";

/** A count as given: a number of hosts, or hundredths of a percent (exact: 12.5% is 1250). */
export type CountSpec = { kind: "count"; n: number } | { kind: "percent"; hundredths: number; text: string };

const MAX_HOSTS = 100_000;

/**
 * Parses `N` or `P%` for `flag`. `min` is the least count allowed (1 for
 * --batch, 0 for a budget); a percentage is above 0 for --batch, from 0 for
 * a budget, and at most 100, with at most two decimals.
 */
export function parseCount(flag: string, raw: string, min: 0 | 1): CountSpec {
  const text = raw.trim();
  const what = `${flag} takes a whole number of hosts${min ? " ≥ 1" : ""} or a percentage (N or P%), not "${raw.slice(0, 40)}"`;
  const pct = /^(\d{1,3})(?:\.(\d{1,2}))?%$/.exec(text);
  if (pct) {
    const hundredths = Number(pct[1]) * 100 + Number((pct[2] ?? "").padEnd(2, "0"));
    if (hundredths > 10_000) throw usageError(`${flag} ${text}: a percentage is at most 100%`);
    if (min === 1 && hundredths === 0) throw usageError(`${flag} ${text}: a batch needs at least one host`);
    return { kind: "percent", hundredths, text };
  }
  if (!/^\d{1,6}$/.test(text)) throw usageError(what);
  const n = Number(text);
  if (n < min) throw usageError(`${flag} ${text}: a batch needs at least one host`);
  if (n > MAX_HOSTS) throw usageError(`${flag} ${text}: more hosts than a fleet can have`);
  return { kind: "count", n };
}

/**
 * A count of hosts out of `total`. A percentage is rounded down — 25% of 8
 * hosts is 2, 10% of 8 is 0 (0.8) — so a budget never lets more than P% of
 * the hosts fail; `atLeastOne` lifts a batch of 0 to 1.
 */
export function resolveCount(spec: CountSpec, total: number, atLeastOne = false): number {
  const n = spec.kind === "count" ? spec.n : Math.floor((spec.hundredths * total) / 10_000);
  return atLeastOne ? Math.max(1, n) : n;
}

const UNITS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;
const MAX_PAUSE_MS = 24 * 3_600_000;

/** `--pause 30s|5m|1h|500ms|1.5m`: milliseconds, at most a day. */
export function parseDuration(flag: string, raw: string): number {
  const m = /^(\d{1,7}(?:\.\d{1,3})?)(ms|s|m|h)$/.exec(raw.trim());
  if (!m) throw usageError(`${flag} takes a duration such as 30s, 5m or 1h (units ms, s, m, h), not "${raw.slice(0, 40)}"`);
  const ms = Math.round(Number(m[1]) * UNITS[m[2] as keyof typeof UNITS]);
  if (ms > MAX_PAUSE_MS) throw usageError(`${flag} ${raw.trim()}: at most 24h`);
  return ms;
}

/**
 * The canary hosts: the first N of `selected`, or the named ones (each must
 * be enrolled — `enrolled` — and among the hosts this update selects).
 */
export function resolveCanary(raw: string, selected: string[], enrolled: (name: string) => boolean): string[] {
  const text = raw.trim();
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    if (n < 1) throw usageError(`--canary ${text}: give at least one host, or leave --canary out`);
    if (n > selected.length) throw usageError(`--canary ${text}: only ${selected.length} host(s) are selected`);
    return selected.slice(0, n);
  }
  const names = [...new Set(text.split(",").map((s) => s.trim()).filter(Boolean))];
  if (!names.length) throw usageError("--canary takes a number of hosts or host names (HOST,...)");
  const unknown = names.filter((n) => !enrolled(n));
  if (unknown.length) throw usageError(`unknown --canary host${unknown.length > 1 ? "s" : ""}: ${unknown.slice(0, 5).join(", ")}`, "see `decnet swarm list`");
  const outside = names.filter((n) => !selected.includes(n));
  if (outside.length) throw usageError(`--canary ${outside.slice(0, 5).join(", ")}: not among the hosts this update selects`);
  return names;
}
