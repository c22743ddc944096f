/**
 * start(config): the updater daemon — join first when it holds a join token
 * and no certificate, recover from the journal, serve over mTLS (and
 * updater.sock locally), then make sure an agent runs from current.
 */
import { mkdirSync, rmSync, unlinkSync } from "node:fs";
import { removeOwnPidFile, writePidFile } from "../../lib/pidfile.ts";
import { checkNotWritableByOthers } from "../../lib/perms.ts";
import { buildInfo } from "../../lib/build-info.ts";
import { deletedFds } from "../../lib/fd-audit.ts";
import type { ResolvedUpdaterConfig } from "../../lib/config.ts";
import type { Logger } from "../../lib/log.ts";
import { bundlePaths, installPaths, joinPaths } from "../../lib/paths.ts";
import { readBundle } from "../../lib/tls.ts";
import { recoverBundle } from "../../lib/bundle-switch.ts";
import { type AgentReload, reloadAgentTls } from "../../lib/control-socket.ts";
import type { AgentSwitch } from "../../protocol/identity.ts";
import { createApp, listenUnix, onShutdown } from "../server.ts";
import { TlsListener } from "../tls-listener.ts";
import { identityRoutes } from "../identity/routes.ts";
import { isJoined, keptJoinToken, workerToken } from "../join/material.ts";
import { AgentOps } from "./ops.ts";
import { SelfOps } from "./self.ts";
import { OpLock, updaterLocalRoutes, updaterRoutes } from "./routes.ts";
import { createSupervisor } from "./supervisor.ts";
import { holdGuards } from "./guards.ts";
import { TrustStore } from "./trust-store.ts";
import { localHealth } from "../../lib/control-socket.ts";
import { killRunning } from "../../lib/proc.ts";
import { timeouts } from "../../lib/timeouts.ts";
import { Counters, countingRestarts } from "./counters.ts";
import { UpdaterLogs } from "./logs.ts";
import { Vitals } from "./vitals.ts";

/** Bun.serve's own limit sits far above ours: stage.ts enforces the real one with an error body. */
const TRANSPORT_BODY_LIMIT = 2 ** 40;

/** What the agent did with new certificates or a CRL, for the master's answer. */
function agentSwitch(r: AgentReload, log: Logger): AgentSwitch {
  if (r.outcome === "failed") log.warn(`the agent keeps serving its old certificates until it restarts: ${r.why}`);
  return r.outcome === "failed" ? "on-restart" : r.outcome;
}

export async function start(cfg: ResolvedUpdaterConfig, log: Logger): Promise<void> {
  const paths = installPaths(cfg.installDir);
  for (const dir of [paths.root, paths.releases, paths.updater.root, paths.updater.releases]) checkNotWritableByOthers(dir);
  mkdirSync(paths.releases, { recursive: true, mode: 0o755 });
  mkdirSync(paths.updater.root, { recursive: true, mode: 0o755 });
  // Held from the start: a joining updater's listener and the one after it share the port with them.
  const guards = holdGuards(cfg, log);
  const updaterBundle = bundlePaths(cfg.updaterDir, "updater");
  const agentBundle = bundlePaths(cfg.agentDir, "worker");
  if (!isJoined(cfg.updaterDir)) {
    const kept = keptJoinToken(cfg.updaterDir);
    if (kept) {
      const { serveJoin } = await import("../join/serve.ts");
      await serveJoin(cfg, paths, workerToken(kept), log);
    }
  } else {
    // Joined, then killed before the join material was removed: those keys are the bundles' now.
    rmSync(joinPaths(cfg.updaterDir).dir, { recursive: true, force: true });
  }
  // A certificate switch (renewal) that a kill interrupted: the old pair or the new one, per bundle.
  let agentRolledForward = false;
  for (const [what, b] of [["updater", updaterBundle], ["agent", agentBundle]] as const) {
    const r = recoverBundle(b);
    if (r !== "clean") log.warn(`${what} bundle: an interrupted certificate switch was ${r}`);
    if (what === "agent" && r === "rolled-forward") agentRolledForward = true;
  }
  readBundle(updaterBundle, `copy the updater bundle from \`decnet swarm enroll --updater --out-dir DIR\` (DIR-updater) to ${cfg.updaterDir}, pass --updater-dir, or join: \`decnet updater --join TOKEN\``);
  // The agent it will start needs its bundle too: refuse now, not at the first update.
  readBundle(agentBundle, `the agent bundle is missing from ${cfg.agentDir}; pass --agent-dir`);

  const trust = new TrustStore(paths.trust, log);
  trust.load(updaterBundle.trust);
  const counters = new Counters(paths.updater.metrics, log);
  const sup = countingRestarts(createSupervisor(cfg, paths, log, () => guards.agent), counters);
  const logs = new UpdaterLogs(cfg, paths);
  const agentHealth = (timeoutMs: number) => localHealth(paths.agentSock, timeoutMs).catch(() => null);
  const ops = new AgentOps({ cfg, paths, sup, log, trust, health: () => agentHealth(timeouts.localHealth()) });
  // After each operation: nothing it opened may still hold a deleted file's blocks.
  const lock = new OpLock((op) => {
    const leaks = deletedFds(paths.root);
    if (leaks.length) log.warn(`after ${op}: ${leaks.length} open file(s) deleted under ${paths.root}, holding ${leaks.reduce((n, l) => n + l.bytes, 0)} bytes: ${leaks.map((l) => `fd ${l.fd} ${l.path}`).join(", ")}`);
  });
  const self = new SelfOps(cfg, paths, log, guards.inherit, trust);
  for (const note of [self.recover(), ops.recoverJournal()]) if (note) log.warn(note);

  let stopServers = () => {};
  const deps = { info: buildInfo(), maxUploadBytes: cfg.maxUploadBytes, ops, self, lock, agentHealth, log, trust, reexec: () => self.reexec(stopServers), counters, vitals: new Vitals(cfg, paths), logs, startedAt: Date.now() };
  // New certificates or a new CRL in both bundle dirs: this listener swaps in
  // process, the agent's through agent.sock (it keeps its pid).
  const switchListeners = async (): Promise<AgentSwitch> => {
    const s = await server.swap();
    log.info(`serving certificate ${s.serial}${s.crl_until ? `, CRL until ${s.crl_until}` : ", no CRL"}`);
    return agentSwitch(await reloadAgentTls(paths.agentSock, timeouts.localHealth() * 5), log);
  };
  const identity = identityRoutes({ agentDir: cfg.agentDir, updaterDir: cfg.updaterDir, now: () => new Date(), lock, log, onRenewed: switchListeners, onCrl: switchListeners });
  const server = new TlsListener({
    app: createApp([...updaterRoutes(deps), ...identity], log), hostname: cfg.host, port: cfg.port, bundle: updaterBundle,
    hint: `copy the updater bundle to ${cfg.updaterDir}`, log, maxRequestBodySize: TRANSPORT_BODY_LIMIT, idleTimeout: 60,
  });
  server.start();
  const sock = listenUnix(paths.updater.sock, createApp(updaterLocalRoutes(deps), log));
  stopServers = () => {
    logs.closeAll();
    server.stop(true);
    sock.stop(true);
  };
  writePidFile(paths.updater.pid, process.pid);
  // A re-executed updater on trial: final once it answers its own /health.
  const trial = await self.confirmTrial(async () => (await localHealth(paths.updater.sock, timeouts.localHealth()).catch(() => null))?.pid === process.pid);
  if (trial) log.info(trial);
  log.info(`updater ${deps.info.version} pid ${process.pid} on ${cfg.host}:${cfg.port}, install dir ${paths.root}`);
  onShutdown(() => {
    // An install check or preflight in flight ends with us (the journal does the rest on the next start).
    killRunning();
    logs.closeAll();
    server.stop(true);
    sock.stop(true);
    try { unlinkSync(paths.updater.sock); } catch {}
    removeOwnPidFile(paths.updater.pid);
    log.info("updater stopped");
  });
  // Serving already; an update waits (423) until the agent is settled.
  await lock.run("startup", () => ops.ensureAgent()).catch((e) => log.error("could not start the agent:", e));
  // An agent that kept running through the kill still serves the certificate its bundle no longer holds.
  if (agentRolledForward) agentSwitch(await reloadAgentTls(paths.agentSock, timeouts.localHealth() * 5), log);
  // Then the hash states of what a next delta push most likely starts from
  // (they do not survive a restart); outside the lock, nothing waits on this.
  for (const [what, set] of [["agent", ops.set], ["updater", self.set]] as const) {
    const id = set.current();
    if (!id) continue;
    const damaged = await set.warm(id).catch((e: Error) => [e.message]);
    if (damaged.length) log.warn(`${what} release ${id.slice(0, 12)} has files no longer matching its manifest: ${damaged.join(", ")}`);
  }
}
