/**
 * createLogger(role): the daemons' logger, consola with one plain line per
 * entry: timestamped in a log file, a `<N>` priority prefix and no timestamp
 * when stderr is the journal (journald stamps each line itself).
 * `consola/core` without its terminal reporters: the full package adds
 * ~30 ms to every daemon start, and an agent starts on every push.
 */
import { fstatSync } from "node:fs";
import { createConsola, type ConsolaInstance, LogLevels } from "consola/core";
import { env } from "./env.ts";
import { err } from "./stdio.ts";

export type Logger = Pick<ConsolaInstance, "info" | "warn" | "error" | "debug" | "success">;

/**
 * One value of a log line. An error is its name, code, message and hint —
 * Bun.inspect of an error in a compiled binary prints kilobytes of bundled
 * source; its stack only with DECNET_DEBUG=1.
 */
export function show(a: unknown): string {
  if (typeof a === "string") return a;
  if (a instanceof Error) {
    const x = a as Error & { code?: unknown; hint?: unknown };
    const code = typeof x.code === "string" ? ` [${x.code}]` : "";
    const hint = typeof x.hint === "string" ? ` — ${x.hint}` : "";
    return `${x.name}${code}: ${x.message}${hint}${env("DECNET_DEBUG") && x.stack ? `\n${x.stack}` : ""}`;
  }
  return Bun.inspect(a);
}

/** syslog priorities (sd-daemon(3)) for consola's entry types; anything else is info. */
const PRIORITY: Record<string, number> = { fatal: 2, error: 3, fail: 3, warn: 4, debug: 7, trace: 7, verbose: 7 };

/**
 * Is stderr the journal? systemd sets JOURNAL_STREAM to the device and inode
 * of the stream it connected; a child whose stderr was redirected elsewhere
 * (an agent spawned into agent.spawn.log) inherits the variable but not the
 * stream, hence the comparison (systemd.exec(5)).
 */
export function stderrIsJournal(): boolean {
  const stream = env("JOURNAL_STREAM");
  if (!stream) return false;
  try {
    const st = fstatSync(2, { bigint: true });
    return stream === `${st.dev}:${st.ino}`;
  } catch {
    return false;
  }
}

/** One entry as written: every line prefixed for the journal, or one timestamped line. */
export function formatEntry(o: { date: Date; role: string; type: string; text: string; journal: boolean }): string {
  if (!o.journal) return `${o.date.toISOString()} ${o.role} ${o.type} ${o.text}\n`;
  // journald splits on newlines and takes the priority of each line from its own prefix.
  const p = `<${PRIORITY[o.type] ?? 6}>`;
  return `${o.text.split("\n").map((l, i) => (i === 0 ? `${p}${o.type} ${l}` : `${p}${l}`)).join("\n")}\n`;
}

export function createLogger(role: string): Logger {
  // Pick the level explicitly: consola's default depends on its environment.
  const name = (env("DECNET_LOG_LEVEL") ?? "info") as keyof typeof LogLevels;
  const level = LogLevels[name] ?? LogLevels.info;
  const journal = stderrIsJournal();
  return createConsola({
    level,
    reporters: [
      {
        log(obj) {
          const text = obj.args.map(show).join(" ");
          err(formatEntry({ date: obj.date, role, type: obj.type, text, journal }));
        },
      },
    ],
  }).withTag(role);
}
