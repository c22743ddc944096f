/**
 * Starting a daemon from the CLI: load `.env.local`, resolve the config, check
 * the bundle, then either serve in this process or detach a copy (--daemon).
 */
import { accessSync, constants, mkdirSync } from "node:fs";
import { DecnetError } from "../lib/errors.ts";
import { resolveAgentConfig, resolveUpdaterConfig, DEFAULT_INSTALL_DIR } from "../lib/config.ts";
import { daemonize, withoutDaemonFlag } from "../lib/daemonize.ts";
import { env, loadEnvLocal } from "../lib/env.ts";
import { createLogger } from "../lib/log.ts";
import { bundlePaths, installPaths } from "../lib/paths.ts";
import { checkNotWritableByOthers } from "../lib/perms.ts";
import { readBundle } from "../lib/tls.ts";
import { out } from "../lib/stdio.ts";

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
    out(`agent running, pid ${pid}, on ${cfg.host}:${cfg.port}, log ${paths.agentSpawnLog}\n`);
    return;
  }
  const { start } = await import("./agent/main.ts");
  await start(cfg, createLogger("agent"));
}

/**
 * Loads and checks everything an updater needs — config, both bundles, that
 * each certificate matches its key, the install dir — and binds nothing. A
 * self-update runs the new binary this way before it may replace the old one.
 */
async function preflight(cfg: ReturnType<typeof resolveUpdaterConfig>): Promise<void> {
  // node:tls only here: loading it costs every daemon start ~13 ms.
  const { createSecureContext } = await import("node:tls");
  const bundles = [
    readBundle(bundlePaths(cfg.updaterDir, "updater"), `pass --updater-dir with the updater bundle`),
    readBundle(bundlePaths(cfg.agentDir, "worker"), `pass --agent-dir with the agent bundle`),
  ];
  for (const b of bundles) {
    try {
      createSecureContext({ cert: b.cert, key: b.key, ca: b.ca });
    } catch (e) {
      throw new DecnetError("failed", `a certificate bundle does not load: ${(e as Error).message}`);
    }
  }
  const paths = installPaths(cfg.installDir);
  for (const dir of [paths.root, paths.releases, paths.updater.root, paths.updater.releases]) checkNotWritableByOthers(dir);
  mkdirSync(paths.updater.root, { recursive: true, mode: 0o755 });
  accessSync(paths.root, constants.W_OK);
}

export async function startUpdater(flags: Flags, detach: boolean): Promise<void> {
  loadEnv(flags);
  const cfg = resolveUpdaterConfig(flags);
  if (flags.watchSelfUpdate) {
    const { watchSelfUpdate } = await import("./updater/self-watch.ts");
    await watchSelfUpdate(cfg, installPaths(cfg.installDir), createLogger("updater-watchdog"));
    return;
  }
  if (flags.preflight) {
    await preflight(cfg);
    out(`preflight ok: updater for ${cfg.installDir} on ${cfg.host}:${cfg.port}\n`);
    return;
  }
  if (detach) {
    readBundle(bundlePaths(cfg.updaterDir, "updater"), `pass --updater-dir with the updater bundle`);
    const paths = installPaths(cfg.installDir);
    mkdirSync(paths.updater.root, { recursive: true });
    const pid = await daemonize({ args: withoutDaemonFlag(process.argv.slice(2)), logFile: paths.updater.log, sock: paths.updater.sock, cwd: paths.root });
    out(`updater running, pid ${pid}, on ${cfg.host}:${cfg.port}, log ${paths.updater.log}\n`);
    return;
  }
  const { start } = await import("./updater/main.ts");
  await start(cfg, createLogger("updater"));
}
