/**
 * createLogger(role): consola with a tag. Daemons get plain timestamped lines
 * (journald, log files); the CLI gets consola's default on a terminal.
 */
import { createConsola, type ConsolaInstance, LogLevels } from "consola";
import { env } from "./env.ts";

export type Logger = Pick<ConsolaInstance, "info" | "warn" | "error" | "debug" | "success">;

export function createLogger(role: string, opts: { daemon?: boolean } = {}): Logger {
  // consola drops to "warn" under a test runner; pick the level explicitly.
  const name = (env("DECNET_LOG_LEVEL") ?? "info") as keyof typeof LogLevels;
  const level = LogLevels[name] ?? LogLevels.info;
  if (opts.daemon) {
    return createConsola({
      level,
      reporters: [
        {
          log(obj) {
            const text = obj.args.map((a) => (typeof a === "string" ? a : Bun.inspect(a))).join(" ");
            process.stderr.write(`${obj.date.toISOString()} ${role} ${obj.type} ${text}\n`);
          },
        },
      ],
    }).withTag(role);
  }
  return createConsola({ level }).withTag(role);
}
