/**
 * start(config): the agent daemon — mTLS server on host:port, local /health on
 * agent.sock, agent.pid naming the serving process; SIGTERM stops it cleanly.
 */
import { mkdirSync, unlinkSync } from "node:fs";
import { removeOwnPidFile, writePidFile } from "../../lib/pidfile.ts";
import { buildInfo } from "../../lib/build-info.ts";
import type { ResolvedAgentConfig } from "../../lib/config.ts";
import type { Logger } from "../../lib/log.ts";
import { bundlePaths, installPaths } from "../../lib/paths.ts";
import { readBundle, serverTls } from "../../lib/tls.ts";
import { createApp, listen, listenUnix, onShutdown } from "../server.ts";
import { composeRunner } from "./compose.ts";
import { agentLocalRoutes, agentRoutes } from "./routes.ts";

export async function start(cfg: ResolvedAgentConfig, log: Logger): Promise<void> {
  const paths = installPaths(cfg.installDir);
  const bundle = readBundle(bundlePaths(cfg.agentDir, "worker"), `copy the agent bundle from \`decnet swarm enroll --out-dir DIR\` to ${cfg.agentDir}, or pass --agent-dir`);
  mkdirSync(paths.root, { recursive: true });
  const deps = { info: buildInfo(), pid: process.pid, startedAt: Date.now(), now: Date.now, compose: composeRunner(paths, cfg.composeBin) };
  const server = listen({ app: createApp(agentRoutes(deps), log), hostname: cfg.host, port: cfg.port, tls: serverTls(bundle) });
  const sock = listenUnix(paths.agentSock, createApp(agentLocalRoutes(deps), log));
  writePidFile(paths.agentPid, process.pid);
  log.info(`agent ${deps.info.version} release ${deps.info.release ?? "none"} pid ${process.pid} on ${cfg.host}:${cfg.port}`);
  onShutdown(() => {
    server.stop(true);
    sock.stop(true);
    try { unlinkSync(paths.agentSock); } catch {}
    removeOwnPidFile(paths.agentPid);
    log.info("agent stopped");
  });
}
