/**
 * `swarm status` as a table: one row per host, coloured on a TTY (red:
 * unreachable or unhealthy, yellow: drift or a certificate expiring within
 * 30 days), and one line per unreachable host saying why.
 */
import type { CertState, StatusReport, StatusRow } from "../../core/swarm/status.ts";
import { EXPIRING_DAYS } from "../../core/swarm/status.ts";
import { clean, type Painted, short, table, tint } from "../_render.ts";

export function duration(s: number | null | undefined): string {
  if (s === null || s === undefined) return "—";
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ""}`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d${Math.floor((s % 86_400) / 3600)}h`;
}

export function bytes(n: number): string {
  for (const [unit, size] of [["TB", 1e12], ["GB", 1e9], ["MB", 1e6], ["kB", 1e3]] as const) if (n >= size) return `${(n / size).toFixed(1)} ${unit}`;
  return `${n} B`;
}

function certs(c: StatusRow["certificates"]): Painted | string {
  if (!c) return "—";
  const days = (x: CertState | null) => (x ? `${x.days_left}d` : "?");
  const least = Math.min(c.updater?.days_left ?? Number.POSITIVE_INFINITY, c.agent?.days_left ?? Number.POSITIVE_INFINITY);
  return tint(`${days(c.updater)}/${days(c.agent)}`, least < 0 ? "red" : least < EXPIRING_DAYS ? "yellow" : null);
}

function cells(r: StatusRow): Array<string | Painted> {
  if (!r.reachable) return [r.host, tint("unreachable", "red"), "—", "—", "—", "—", "—", "—", "—", "—", r.last_push?.result ?? "—"];
  const a = r.agent!;
  return [
    r.host,
    tint(`${r.updater!.version} ${short(r.updater!.release)}`, null),
    tint(a.healthy ? "healthy" : "unhealthy", a.healthy ? "green" : "red"),
    short(a.release),
    duration(a.uptime_s),
    r.drift === null ? "—" : tint(r.drift ? `yes (pushed ${short(r.last_release)})` : "no", r.drift ? "yellow" : null),
    r.busy ?? "—",
    certs(r.certificates),
    r.disk ? bytes(r.disk.free_bytes) : "—",
    `${r.ms} ms`,
    r.last_push?.result ?? "—",
  ];
}

export function statusTable(rep: StatusReport): string {
  const head = ["host", "updater", "agent", "agent release", "uptime", "drift", "busy", "certs (updater/agent)", "disk free", "answered in", "last push"];
  const why = rep.hosts.filter((r) => !r.reachable).map((r) => `${clean(r.host)}: ${clean(r.error?.message ?? "no answer")}${r.error?.hint ? ` — ${clean(r.error.hint)}` : ""}\n`);
  const bad = rep.hosts.filter((r) => !r.healthy).length;
  const summary = `${rep.hosts.length} host(s) in ${rep.duration_ms} ms (timeout ${rep.timeout_ms} ms each)${bad ? `, ${bad} unreachable or unhealthy` : ""}\n`;
  return table(head, rep.hosts.map(cells)) + why.join("") + summary;
}
