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

export function createLogger(role: string): Logger {
  // Pick the level explicitly: consola's default depends on its environment.
  const name = (env("DECNET_LOG_LEVEL") ?? "info") as keyof typeof LogLevels;
  const level = LogLevels[name] ?? LogLevels.info;
  return createConsola({
    level,
    reporters: [
      {
        log(obj) {
          const text = obj.args.map((a) => (typeof a === "string" ? a : Bun.inspect(a))).join(" ");
          err(`${obj.date.toISOString()} ${role} ${obj.type} ${text}\n`);
        },
      },
    ],
  }).withTag(role);
}
