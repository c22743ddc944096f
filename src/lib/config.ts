/**
 * Per-role configuration: flags, then env (and .env.local, loaded by the
 * daemon before this runs), then defaults — zod-checked into Resolved*.
 */
import { resolve } from "node:path";
import { z } from "zod";
import { env, envSnapshot } from "./env.ts";
import { DecnetError } from "./errors.ts";
import { homePaths } from "./paths.ts";

const port = z.coerce.number().int().min(1).max(65535);
const dir = z.string().min(1).transform((p) => resolve(p));

export const DEFAULT_INSTALL_DIR = "/opt/decnet";
export const DEFAULT_AGENT_PORT = 8765;
export const DEFAULT_UPDATER_PORT = 8766;

const AgentConfig = z.object({
  host: z.string().min(1),
  port,
  agentDir: dir,
  installDir: dir,
  composeBin: z.string().min(1),
});
export type ResolvedAgentConfig = z.infer<typeof AgentConfig>;

const UpdaterConfig = z.object({
  host: z.string().min(1),
  port,
  updaterDir: dir,
  installDir: dir,
  agentDir: dir,
  agentPort: port,
  agentSupervisor: z.enum(["spawn", "systemd"]),
  maxUploadBytes: z.coerce.number().int().min(1024),
  keepReleases: z.coerce.number().int().min(1).max(100),
});
export type ResolvedUpdaterConfig = z.infer<typeof UpdaterConfig>;

function parse<T>(schema: z.ZodType<T>, input: unknown, what: string): T {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const first = r.error.issues[0]!;
  throw new DecnetError("usage", `invalid ${what} setting ${first.path.join(".")}: ${first.message}`, { exitCode: 2 });
}

type Flags = Record<string, unknown>;
const s = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined);

export function resolveAgentConfig(f: Flags): ResolvedAgentConfig {
  const home = homePaths();
  return parse(AgentConfig, {
    host: s(f.host) ?? env("DECNET_HOST") ?? "0.0.0.0",
    port: s(f.port) ?? env("DECNET_AGENT_PORT") ?? DEFAULT_AGENT_PORT,
    agentDir: s(f.agentDir) ?? home.defaultAgentDir,
    installDir: s(f.installDir) ?? DEFAULT_INSTALL_DIR,
    composeBin: env("DECNET_COMPOSE_BIN") ?? "docker",
  }, "agent");
}

export function resolveUpdaterConfig(f: Flags): ResolvedUpdaterConfig {
  const home = homePaths();
  return parse(UpdaterConfig, {
    host: s(f.host) ?? env("DECNET_UPDATER_HOST") ?? env("DECNET_HOST") ?? "0.0.0.0",
    port: s(f.port) ?? env("DECNET_UPDATER_PORT") ?? DEFAULT_UPDATER_PORT,
    updaterDir: s(f.updaterDir) ?? env("DECNET_UPDATER_BUNDLE_DIR") ?? home.defaultUpdaterDir,
    installDir: s(f.installDir) ?? env("DECNET_UPDATER_INSTALL_DIR") ?? DEFAULT_INSTALL_DIR,
    agentDir: s(f.agentDir) ?? env("DECNET_UPDATER_AGENT_DIR") ?? home.defaultAgentDir,
    agentPort: s(f.agentPort) ?? env("DECNET_AGENT_PORT") ?? DEFAULT_AGENT_PORT,
    agentSupervisor: s(f.agentSupervisor) ?? "spawn",
    maxUploadBytes: env("DECNET_MAX_UPLOAD_BYTES") ?? 512 * 1024 * 1024,
    keepReleases: env("DECNET_KEEP_RELEASES") ?? 3,
  }, "updater");
}

/**
 * The agent's command line, as the updater starts it: on the updater's own
 * address and the agent port (install.sh's agent unit mirrors this).
 */
export function agentArgv(cfg: Pick<ResolvedUpdaterConfig, "host" | "agentPort" | "agentDir" | "installDir">): string[] {
  return ["agent", "--host", cfg.host, "--port", String(cfg.agentPort), "--agent-dir", cfg.agentDir, "--install-dir", cfg.installDir];
}

/** The updater's command line, rebuilt from its resolved configuration (install.sh's updater unit mirrors this). */
export function updaterArgv(cfg: ResolvedUpdaterConfig): string[] {
  return [
    "updater", "--host", cfg.host, "--port", String(cfg.port), "--updater-dir", cfg.updaterDir,
    "--install-dir", cfg.installDir, "--agent-dir", cfg.agentDir, "--agent-port", String(cfg.agentPort),
    "--agent-supervisor", cfg.agentSupervisor,
  ];
}

/** The same configuration in the environment, for a re-executed updater (DESIGN §5). */
export function updaterEnv(cfg: ResolvedUpdaterConfig): Record<string, string> {
  return envSnapshot({
    DECNET_UPDATER_HOST: cfg.host,
    DECNET_UPDATER_PORT: String(cfg.port),
    DECNET_UPDATER_BUNDLE_DIR: cfg.updaterDir,
    DECNET_UPDATER_INSTALL_DIR: cfg.installDir,
    DECNET_UPDATER_AGENT_DIR: cfg.agentDir,
    DECNET_AGENT_PORT: String(cfg.agentPort),
  });
}
