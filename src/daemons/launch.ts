/**
 * Starting a daemon from the CLI: load `.env.local`, resolve the config, check
 * the bundle, then either serve in this process or detach a copy (--daemon).
 */
import { mkdirSync } from "node:fs";
import { resolveAgentConfig, resolveUpdaterConfig, DEFAULT_INSTALL_DIR } from "../lib/config.ts";
import { daemonize, withoutDaemonFlag } from "../lib/daemonize.ts";
import { env, loadEnvLocal } from "../lib/env.ts";
import { createLogger } from "../lib/log.ts";
import { bundlePaths, installPaths } from "../lib/paths.ts";
import { readBundle } from "../lib/tls.ts";

type Flags = Record<string, unknown>;

function loadEnv(flags: Flags): void {
  const dir = typeof flags.installDir === "string" && flags.installDir ? flags.installDir : env("DECNET_UPDATER_INSTALL_DIR") ?? DEFAULT_INSTALL_DIR;
  loadEnvLocal(installPaths(dir).envLocal);
}

export async function startAgent(flags: Flags, detach: boolean): Promise<void> {
  loadEnv(flags);
  const cfg = resolveAgentConfig(flags);
  if (detach) {
    readBundle(bundlePaths(cfg.agentDir, "worker"), `pass --agent-dir with the agent bundle`);
    const paths = installPaths(cfg.installDir);
    mkdirSync(paths.root, { recursive: true });
    const pid = await daemonize({ args: withoutDaemonFlag(process.argv.slice(2)), logFile: paths.agentSpawnLog, sock: paths.agentSock, cwd: paths.root });
    process.stdout.write(`agent running, pid ${pid}, on ${cfg.host}:${cfg.port}, log ${paths.agentSpawnLog}\n`);
    return;
  }
  const { start } = await import("./agent/main.ts");
  await start(cfg, createLogger("agent", { daemon: true }));
}

export async function startUpdater(flags: Flags, detach: boolean): Promise<void> {
  loadEnv(flags);
  const cfg = resolveUpdaterConfig(flags);
  if (detach) {
    readBundle(bundlePaths(cfg.updaterDir, "updater"), `pass --updater-dir with the updater bundle`);
    const paths = installPaths(cfg.installDir);
    mkdirSync(paths.updater.root, { recursive: true });
    const pid = await daemonize({ args: withoutDaemonFlag(process.argv.slice(2)), logFile: paths.updater.log, sock: paths.updater.sock, cwd: paths.root });
    process.stdout.write(`updater running, pid ${pid}, on ${cfg.host}:${cfg.port}, log ${paths.updater.log}\n`);
    return;
  }
  const { start } = await import("./updater/main.ts");
  await start(cfg, createLogger("updater", { daemon: true }));
}
