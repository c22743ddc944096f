/**
 * The only module that knows on-disk layouts: ~/.decnet (DECNET_HOME), a
 * daemon's bundle dir, and a worker's install dir (DESIGN §4).
 */
import { chmodSync, mkdirSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { env } from "./env.ts";

/** Creates `dir` (and parents) and makes sure it is 0700. */
export function ensurePrivateDir(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  return dir;
}

export function decnetHome(): string {
  return resolve(env("DECNET_HOME") ?? join(homedir(), ".decnet"));
}

export function homePaths(home = decnetHome()) {
  const ca = join(home, "ca");
  const master = join(ca, "master");
  return {
    home,
    caDir: ca,
    caCrt: join(ca, "ca.crt"),
    caKey: join(ca, "ca.key"),
    master: bundlePaths(master, "worker"),
    db: join(home, "swarm.db"),
    /** The master's cache of releases by id: block indexes and files (core/release-cache.ts). */
    releaseCache: join(home, "cache", "releases"),
    defaultAgentDir: join(home, "agent"),
    defaultUpdaterDir: join(home, "updater"),
  };
}

export type BundleRole = "worker" | "updater";

/** A daemon's (or the master's) certificate bundle. */
export function bundlePaths(dir: string, role: BundleRole) {
  return {
    dir: resolve(dir),
    ca: join(resolve(dir), "ca.crt"),
    crt: join(resolve(dir), `${role}.crt`),
    key: join(resolve(dir), `${role}.key`),
  };
}
export type BundlePaths = ReturnType<typeof bundlePaths>;

/** The slots of one release set: the agent's, or the updater's own. */
function slotPaths(root: string) {
  const releases = join(root, "releases");
  return {
    root,
    current: join(root, "current"),
    previous: join(root, "previous"),
    releases,
    release: (id: string) => join(releases, id),
    staging: (tag: string) => join(releases, `.staging-${tag}`),
    /** The files of the last pruned release, rewritten in place by the next delta (slots.ts). */
    spare: join(releases, ".spare"),
    stateJson: join(root, "state.json"),
    /** Block indexes of releases, for delta pushes; outside the immutable release dirs. */
    blocksDir: join(root, "blocks"),
    blocks: (id: string) => join(root, "blocks", `${id}.json`),
  };
}
export type SlotPaths = ReturnType<typeof slotPaths>;

export const RELEASE_BINARY = "decnet";
export const RELEASE_MANIFEST = "manifest.json";

export function installPaths(installDir: string) {
  const root = resolve(installDir);
  const updaterRoot = join(root, "updater");
  return {
    ...slotPaths(root),
    updater: {
      ...slotPaths(updaterRoot),
      pid: join(updaterRoot, "updater.pid"),
      log: join(updaterRoot, "updater.log"),
      sock: join(updaterRoot, "updater.sock"),
    },
    agentPid: join(root, "agent.pid"),
    agentSpawnLog: join(root, "agent.spawn.log"),
    agentSock: join(root, "agent.sock"),
    envLocal: join(root, ".env.local"),
    deployments: join(root, "deployments"),
    deployment: (project: string) => join(root, "deployments", project),
  };
}
export type InstallPaths = ReturnType<typeof installPaths>;

/** The release directory an executable was started from, if it is one. */
export function manifestBeside(executable: string): string {
  return join(executable, "..", RELEASE_MANIFEST);
}
