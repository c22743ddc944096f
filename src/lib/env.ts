/**
 * The only reader of process.env and of `<install-dir>/.env.local`.
 * Real environment variables win over the file.
 */
import { existsSync, readFileSync } from "node:fs";
import { DecnetError } from "./errors.ts";

export function env(name: string): string | undefined {
  const v = process.env[name];
  return v === undefined || v === "" ? undefined : v;
}

/** A copy of the environment, for handing to a child process. */
export function envSnapshot(extra: Record<string, string> = {}): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) out[k] = v;
  return { ...out, ...extra };
}

/**
 * Keys `.env.local` may set. Anything else is refused at start, so a typo is
 * a clear error instead of a silently ignored setting.
 */
export const ENV_LOCAL_KEYS = [
  "DECNET_HOST",
  "DECNET_AGENT_PORT",
  "DECNET_UPDATER_PORT",
  "DECNET_COMPOSE_BIN",
  "DECNET_PROBE_TIMEOUT_MS",
  "DECNET_STOP_TIMEOUT_MS",
  "DECNET_INSTALL_CHECK_TIMEOUT_MS",
  "DECNET_MAX_UPLOAD_BYTES",
  "DECNET_KEEP_RELEASES",
  "DECNET_LOG_LEVEL",
] as const;

/** Parses KEY=VALUE lines (# comments, optional quotes). */
export function parseEnvFile(text: string, where: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = /^(?:export\s+)?([A-Z_][A-Z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new DecnetError("bad_request", `${where}:${i + 1}: not a KEY=VALUE line`, { hint: "fix or remove that line" });
    const key = m[1]!;
    let value = m[2]!;
    if (/^(["']).*\1$/.test(value)) value = value.slice(1, -1);
    if (!(ENV_LOCAL_KEYS as readonly string[]).includes(key)) {
      throw new DecnetError("bad_request", `${where}:${i + 1}: unknown key ${key}`, {
        hint: `known keys: ${ENV_LOCAL_KEYS.join(", ")}`,
      });
    }
    out[key] = value;
  }
  return out;
}

/**
 * Loads `.env.local` into process.env for keys the environment does not set.
 * Returns the keys it applied.
 */
export function loadEnvLocal(file: string): string[] {
  if (!existsSync(file)) return [];
  const values = parseEnvFile(readFileSync(file, "utf8"), file);
  const applied: string[] = [];
  for (const [k, v] of Object.entries(values)) {
    if (process.env[k] === undefined) {
      process.env[k] = v;
      applied.push(k);
    }
  }
  return applied;
}
