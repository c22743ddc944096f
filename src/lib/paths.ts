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
    /** The CRL the master signs and pushes (core/crl.ts). */
    crl: join(ca, "crl.pem"),
    master: bundlePaths(master, "worker"),
    /** rotate-master builds the new identity here, then renames it over `master`. */
    masterNext: join(ca, "master.next"),
    masterOld: join(ca, "master.old"),
    db: join(home, "swarm.db"),
    /** Releases the master built, packed or keeps: a push's own (deleted after it), a rollout's until it is done or aborted. */
    cache: join(home, "cache"),
    /** A rollout's release, kept so `swarm rollout resume` sends the very same bytes. */
    rolloutRelease: (id: string) => join(home, "cache", "rollouts", id),
    /** One dir per push (core/push-release.ts): the release's files, manifest, and its tarball once a host needs it whole. */
    pushCache: join(home, "cache", "push"),
    /** The master's cache of releases by id: block indexes and files (core/release-cache.ts). */
    releaseCache: join(home, "cache", "releases"),
    defaultAgentDir: join(home, "agent"),
    defaultUpdaterDir: join(home, "updater"),
    trust: trustPaths(join(home, "trust")),
  };
}

/** The master's trust dir (DESIGN §11): the root key (meant to go offline), a signing key, trust.json. */
export function trustPaths(dir: string) {
  const d = resolve(dir);
  return {
    dir: d,
    rootKey: join(d, "root.key"),
    signingKey: join(d, "signing.key"),
    doc: join(d, "trust.json"),
    /** Every version written, kept so a worker that missed a root rotation can be walked through it. */
    historyDir: join(d, "history"),
    history: (version: number) => join(d, "history", `trust-${version}.json`),
    /** Where `trust add-signer` puts a new signing key unless told otherwise. */
    signerKey: (id: string) => join(d, `signing-${id}.key`),
  };
}
export type TrustPaths = ReturnType<typeof trustPaths>;

export type BundleRole = "worker" | "updater";

/** A daemon's (or the master's) certificate bundle. */
export function bundlePaths(dir: string, role: BundleRole) {
  return {
    dir: resolve(dir),
    ca: join(resolve(dir), "ca.crt"),
    crt: join(resolve(dir), `${role}.crt`),
    key: join(resolve(dir), `${role}.key`),
    /** The CRL a daemon enforces, kept beside its certificate. */
    crl: join(resolve(dir), "crl.pem"),
    /** The fleet's trust document as enrollment delivered it (the updater's bundle). */
    trust: join(resolve(dir), "trust.json"),
  };
}
export type BundlePaths = ReturnType<typeof bundlePaths>;

/**
 * A joining worker's keys, CSRs and join-listener certificate (one 0600 file
 * written atomically), kept until the join completes so a restarted updater
 * offers the same keys again; and the token it joins with (0600), so an
 * updater started without --join (a systemd unit, a restart) joins with it.
 */
export function joinPaths(updaterDir: string) {
  const dir = join(resolve(updaterDir), "join");
  return { dir, material: join(dir, "material.json"), token: join(dir, "token") };
}
export type JoinPaths = ReturnType<typeof joinPaths>;

/** A renewal's new keys and CSRs (one 0600 file), kept from /renew/csr until /renew/install. */
export function renewPaths(updaterDir: string) {
  const dir = join(resolve(updaterDir), "renew");
  return { dir, material: join(dir, "material.json") };
}

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
    /** The files of the last pruned release, rewritten in place by the next delta (spare.ts). */
    spare: join(releases, ".spare"),
    /** The spare's block index, moved in with it. */
    spareIndex: join(releases, ".spare", "blocks.json"),
    stateJson: join(root, "state.json"),
    /** Status and install time of each release (history.ts). */
    history: join(root, "history.json"),
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
      /** The last self-update: on trial, confirmed, or rolled back, with the new updater's last words. */
      selfUpdate: join(updaterRoot, "self-update.json"),
      /** The counters /metrics reports, kept across restarts (counters.ts). */
      metrics: join(updaterRoot, "metrics.json"),
    },
    /** The trust document the updater holds (DESIGN §11): outside releases/, never rolled back. */
    trust: join(root, "trust.json"),
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
