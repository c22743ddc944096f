/**
 * createLogger(role): the daemons' logger, consola with one plain timestamped
 * line per entry (journald, log files). `consola/core` without its terminal
 * reporters: the full package adds ~30 ms to every daemon start, and an
 * agent starts on every push.
 */
import { createConsola, type ConsolaInstance, LogLevels } from "consola/core";
import { env } from "./env.ts";
import { err } from "./stdio.ts";

export type Logger = Pick<ConsolaInstance, "info" | "warn" | "error" | "debug" | "success">;

/**
 * One value of a log line. An error is its name, code, message and hint —
 * Bun.inspect of an error in a compiled binary prints kilobytes of bundled
 * source; its stack only with DECNET_DEBUG=1.
 */
function show(a: unknown): string {
  if (typeof a === "string") return a;
  if (a instanceof Error) {
    const x = a as Error & { code?: unknown; hint?: unknown };
    const code = typeof x.code === "string" ? ` [${x.code}]` : "";
    const hint = typeof x.hint === "string" ? ` — ${x.hint}` : "";
    return `${x.name}${code}: ${x.message}${hint}${env("DECNET_DEBUG") && x.stack ? `\n${x.stack}` : ""}`;
  }
  return Bun.inspect(a);
}

export function createLogger(role: string): Logger {
  // Pick the level explicitly: consola's default depends on its environment.
  const name = (env("DECNET_LOG_LEVEL") ?? "info") as keyof typeof LogLevels;
  const level = LogLevels[name] ?? LogLevels.info;
  return createConsola({
    level,
    reporters: [
      {
        log(obj) {
          const text = obj.args.map(show).join(" ");
          err(`${obj.date.toISOString()} ${role} ${obj.type} ${text}\n`);
        },
      },
    ],
  }).withTag(role);
}
