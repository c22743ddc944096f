/**
 * A joining updater's servers: until it has joined it answers only the two
 * join routes, over server-only TLS with its throwaway certificate (no client
 * holds a decnet certificate yet), and a local /health on updater.sock for
 * `--daemon`. Resolves once the bundles are installed and its servers are
 * stopped; fails, with one line, when the token lapses first.
 */
import { unlinkSync } from "node:fs";
import { buildInfo } from "../../lib/build-info.ts";
import type { ResolvedUpdaterConfig } from "../../lib/config.ts";
import { DecnetError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { bundlePaths, type InstallPaths } from "../../lib/paths.ts";
import { removeOwnPidFile, writePidFile } from "../../lib/pidfile.ts";
import { SERVER_CIPHERS } from "../../lib/tls.ts";
import type { JoinToken } from "../../protocol/join-token.ts";
import { joinLocalApi } from "../../protocol/join.ts";
import { createApp, listen, listenUnix, onShutdown, route } from "../server.ts";
import { installJoined, loadOrMakeJoinMaterial } from "./material.ts";
import { joinRoutes } from "./routes.ts";

/** setTimeout's longest delay: a token that lives longer is checked again when this fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export async function serveJoin(cfg: ResolvedUpdaterConfig, paths: InstallPaths, token: JoinToken, log: Logger): Promise<void> {
  const material = await loadOrMakeJoinMaterial(cfg.updaterDir, token);
  const expiresAt = new Date(token.expires * 1000).toISOString();
  let joined!: () => void;
  let lapsed!: (e: Error) => void;
  const outcome = new Promise<void>((res, rej) => {
    joined = res;
    lapsed = rej;
  });
  const app = createApp(joinRoutes({
    token,
    material,
    now: () => new Date(),
    install: (b) => installJoined({ agentDir: cfg.agentDir, updaterDir: cfg.updaterDir, trustFile: bundlePaths(cfg.updaterDir, "updater").trust }, material, b),
    onJoined: () => joined(),
    log,
  }), log);
  const server = listen({ app, hostname: cfg.host, port: cfg.port, tls: { cert: material.tls.certPem, key: material.tls.keyPem, ciphers: SERVER_CIPHERS } });
  const info = buildInfo();
  const sock = listenUnix(paths.updater.sock, createApp([route(joinLocalApi.health, () => ({
    status: "joining" as const, role: "updater" as const, version: info.version, release: info.release, pid: process.pid,
    join: { host: token.host, expires_at: expiresAt, port: cfg.port },
  }))], log));
  writePidFile(paths.updater.pid, process.pid);
  const stop = (force: boolean) => {
    server.stop(force);
    sock.stop(true);
    try { unlinkSync(paths.updater.sock); } catch {}
  };
  const handBack = onShutdown(() => {
    stop(true);
    removeOwnPidFile(paths.updater.pid);
    log.info("updater stopped before it joined");
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const watch = () => {
    const left = token.expires * 1000 - Date.now();
    if (left <= 0) {
      lapsed(new DecnetError("token_expired", `the join token for ${token.host} expired at ${expiresAt} before the master completed the join; nothing was installed`, {
        hint: `open a new join on the master (\`decnet swarm enroll --host ${token.host} --address ADDR --join\`) and start this updater with the new token`,
      }));
      return;
    }
    timer = setTimeout(watch, Math.min(left, MAX_TIMER_MS));
  };
  watch();
  log.info(`updater ${info.version} pid ${process.pid} waiting on ${cfg.host}:${cfg.port} to join as ${token.host} (token expires at ${expiresAt}); serving only /join/hello and /join/finish`);
  try {
    await outcome;
  } catch (e) {
    removeOwnPidFile(paths.updater.pid);
    throw e;
  } finally {
    clearTimeout(timer);
    handBack();
    // Not forced: the answer to /join/finish is still on its way to the master.
    stop(false);
  }
}
