/**
 * The fleet harness shared by the e2e tests, `bun run demo` and the
 * benchmarks: builds the binary once, packs the releases once, and starts
 * workers on their own 127.0.B.N addresses with default ports and temporary
 * install dirs — all from the one compiled binary. `await using` stops
 * everything it started.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { build } from "../../build.ts";
import type { ReleasesResponse, UpdaterHealth } from "../../src/protocol/updater.ts";
import type { HostResult } from "../../src/core/swarm/push.ts";
import { clientTls, readBundle, type Bundle } from "../../src/lib/tls.ts";
import { bundlePaths, installPaths } from "../../src/lib/paths.ts";
import { allPids, cmdline, isAlive } from "../../src/lib/procfs.ts";
import { readPidFile } from "../../src/lib/pidfile.ts";
import { agentArgv, resolveUpdaterConfig, updaterArgv } from "../../src/lib/config.ts";
import { pathWithQuery } from "../../src/protocol/route.ts";
import { updaterApi } from "../../src/protocol/updater.ts";

export const ROOT = resolve(import.meta.dir, "../..");
export const FIXTURES = join(ROOT, "test/fixtures/releases");
// Per process: `bun run demo` (run by a test) builds and packs in parallel
// with the test process, and must not overwrite releases it has cached ids for.
const CACHE_ROOT = join(ROOT, ".cache/test");
export const CACHE = join(CACHE_ROOT, String(process.pid));
process.on("exit", () => rmSync(CACHE, { recursive: true, force: true }));
// `bun test` may end without "exit" handlers: drop caches of processes that are gone.
for (const d of (() => { try { return readdirSync(CACHE_ROOT); } catch { return []; } })()) {
  if (/^\d+$/.test(d) && !isAlive(Number(d))) rmSync(join(CACHE_ROOT, d), { recursive: true, force: true });
}

export interface Built {
  bin: string;
  bin2: string;
  version: string;
  version2: string;
}

let built: Promise<Built> | undefined;

/** dist-like binaries for this source tree: v1 (package version) and v2 (another version). */
export function binaries(): Promise<Built> {
  built ??= (async () => {
    mkdirSync(CACHE, { recursive: true });
    const a = await build({ out: join(CACHE, "decnet") });
    const b = await build({ out: join(CACHE, "decnet-v2"), version: `${a.version}-next` });
    return { bin: a.out, bin2: b.out, version: a.version, version2: b.version };
  })();
  return built;
}

const more = new Map<string, Promise<string>>();

/**
 * More builds, only for the tests that need more real releases: v3's
 * version is longer than v2's, v4's between v1's and v2's.
 */
function moreBinary(name: "v3" | "v4"): Promise<string> {
  let p = more.get(name);
  if (!p) {
    p = binaries().then(async (b) => (await build({ out: join(CACHE, `decnet-${name}`), version: `${b.version}-${name === "v3" ? "third" : "4"}` })).out);
    more.set(name, p);
  }
  return p;
}

export interface Packed {
  file: string;
  id: string;
  version: string;
}

const packed = new Map<string, Promise<Packed>>();
/** `release pack` keeps the release's block index in its DECNET_HOME's cache: a home of the test run's own, never the user's (nor a fleet master's: it knows only what it pushed). */
const PACK_ENV = { DECNET_HOME: join(CACHE, "pack-home") };

/** Packs a release with the CLI itself (`decnet release pack`), once per name. */
export function release(name: "v1" | "v2" | "v3" | "v4" | "agent-exits" | "agent-silent" | "agent-execs" | "version-fails" | "preflight-fails" | "version-forks"): Promise<Packed> {
  let p = packed.get(name);
  if (!p) {
    p = (async () => {
      const b = await binaries();
      const src = name === "v1" ? b.bin : name === "v2" ? b.bin2 : name === "v3" || name === "v4" ? await moreBinary(name) : join(FIXTURES, `${name}.sh`);
      const out = join(CACHE, `${name}.tar.gz`);
      const args = ["release", "pack", src, "--out", out, ...(name === "version-fails" ? ["--version", "9.9.9"] : [])];
      const r = await runCli(b.bin, args, PACK_ENV);
      if (r.code !== 0) throw new Error(`pack ${name} failed: ${r.stderr}`);
      const m = JSON.parse(await tarManifest(out)) as { id: string; version: string };
      return { file: out, id: m.id, version: m.version };
    })();
    packed.set(name, p);
  }
  return p;
}

const versioned = new Map<string, Promise<string>>();

/** A build of this tree that reports `version` (a semver one: the trust checks compare versions). */
export function binaryAt(version: string): Promise<string> {
  let p = versioned.get(version);
  if (!p) {
    p = binaries().then(async () => (await build({ out: join(CACHE, `decnet-at-${version}`), version })).out);
    versioned.set(version, p);
  }
  return p;
}

const atCommit = new Map<string, Promise<string>>();

/**
 * decnet as it was at commit `sha` (e.g. an updater from before delta format
 * 2): the tree exported with `git archive` (no worktree registered in the
 * repository), its own `bun install --frozen-lockfile`, built once and kept
 * in .cache/test/commits/<sha>/decnet across runs.
 */
export function binaryAtCommit(sha: string): Promise<string> {
  let p = atCommit.get(sha);
  if (!p) {
    p = (async () => {
      const full = (await runQuiet(["git", "rev-parse", "--verify", `${sha}^{commit}`], ROOT)).trim();
      const dir = join(CACHE_ROOT, "commits", full);
      const out = join(dir, "decnet");
      if (existsSync(out)) return out;
      const tmp = mkdtempSync(join(CACHE_ROOT, `commit-${full.slice(0, 12)}-`));
      try {
        await runQuiet(["sh", "-c", `git -C '${ROOT}' archive --format=tar '${full}' | tar -x -C '${tmp}'`], ROOT);
        await runQuiet(["bun", "install", "--frozen-lockfile"], tmp);
        await runQuiet(["bun", "build.ts", "--out", join(tmp, "decnet.out")], tmp);
        mkdirSync(dir, { recursive: true });
        renameSync(join(tmp, "decnet.out"), out);
        return out;
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    })();
    atCommit.set(sha, p);
  }
  return p;
}

/** Runs a setup command; its stdout, or an Error with its output. */
async function runQuiet(cmd: string[], cwd: string): Promise<string> {
  const p = Bun.spawn(cmd, { cwd, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`${cmd.join(" ")} (in ${cwd}) failed: ${err || out}`);
  return out;
}

/** `decnet release pack` of `bin` to `out`, with `extra` flags (e.g. --sign) and `env` (e.g. DECNET_HOME for the signing key). */
export async function packRelease(bin: string, out: string, extra: string[] = [], env: Record<string, string> = {}): Promise<Packed> {
  const b = await binaries();
  const r = await runCli(b.bin, ["release", "pack", bin, "--out", out, ...extra], { ...PACK_ENV, ...env });
  if (r.code !== 0) throw new Error(`pack ${bin} failed: ${r.stderr}`);
  const m = JSON.parse(await tarManifest(out)) as { id: string; version: string };
  return { file: out, id: m.id, version: m.version };
}

async function tarManifest(file: string): Promise<string> {
  const p = Bun.spawn(["tar", "xzOf", file, "manifest.json"], { stdout: "pipe" });
  const text = await new Response(p.stdout).text();
  await p.exited;
  return text;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runCli(bin: string, args: string[], env: Record<string, string>, opts: { cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  const p = Bun.spawn([bin, ...args], { env: { ...process.env, ...env }, cwd: opts.cwd, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const timer = setTimeout(() => p.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** Waits for `fn` to return a truthy value, polling; never a bare sleep. */
export async function until<T>(fn: () => T | Promise<T>, what: string, timeoutMs = 15_000, everyMs = 20): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    await Bun.sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

let blockCounter = 0;
/** A fresh 127.0.B.0/24 block per fleet, so fleets in one run never share an address. */
function nextBlock(): number {
  blockCounter += 1;
  return 1 + ((process.pid * 13 + blockCounter * 7) % 250);
}

/** `swarm update --json`, parsed: the report, and one host's row. */
export interface UpdateRun extends CliResult {
  report: { release: { id: string; version: string; size: number }; hosts: HostResult[] } | null;
  /** The row of `host` (default: the first); throws when there is none. */
  row(host?: string): HostResult;
}

export interface Worker {
  name: string;
  address: string;
  agentBundle: string;
  updaterBundle: string;
  installDir: string;
  paths: ReturnType<typeof installPaths>;
}

export interface FleetOptions {
  workers: number;
  /** Extra env for every CLI call and daemon (e.g. a shorter probe deadline). */
  env?: Record<string, string>;
  enroll?: boolean;
}

export class Fleet implements AsyncDisposable {
  readonly workers: Worker[] = [];
  readonly env: Record<string, string>;
  private masterBundle?: Bundle;

  private constructor(
    readonly root: string,
    readonly bin: string,
    readonly block: number,
    env: Record<string, string>,
  ) {
    this.env = { DECNET_HOME: join(root, "home"), DECNET_LOG_LEVEL: "info", ...env };
  }

  static async create(o: FleetOptions): Promise<Fleet> {
    const b = await binaries();
    const root = mkdtempSync(join(tmpdir(), "decnet-fleet-"));
    const fleet = new Fleet(root, b.bin, nextBlock(), o.env ?? {});
    for (let i = 1; i <= o.workers; i++) {
      const name = `w${i}`;
      const address = `127.0.${fleet.block}.${i}`;
      const agentBundle = join(root, "bundles", name);
      const installDir = join(root, "workers", name);
      fleet.workers.push({ name, address, agentBundle, updaterBundle: `${agentBundle}-updater`, installDir, paths: installPaths(installDir) });
      if (o.enroll !== false) {
        const r = await fleet.cli(["swarm", "enroll", "--host", name, "--address", address, "--updater", "--out-dir", agentBundle]);
        if (r.code !== 0) throw new Error(`enroll ${name}: ${r.stderr}`);
      }
    }
    // Materialises the master identity, as any swarm command does.
    const list = await fleet.cli(["swarm", "list"]);
    if (list.code !== 0) throw new Error(`swarm list: ${list.stderr}`);
    return fleet;
  }

  cli(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
    return runCli(this.bin, args, { ...this.env, ...opts.env }, { cwd: opts.cwd ?? this.root });
  }

  /** `decnet swarm update … --json`, with its report parsed. */
  async update(args: string[], opts: { env?: Record<string, string> } = {}): Promise<UpdateRun> {
    const r = await this.cli(["swarm", "update", ...args, "--json"], opts);
    let report: UpdateRun["report"] = null;
    try {
      report = JSON.parse(r.stdout);
    } catch {}
    const row = (host?: string) => {
      const h = report?.hosts.find((x) => host === undefined || x.host === host);
      if (!h) throw new Error(`no row${host ? ` for ${host}` : ""} in \`swarm update --json\` (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
      return h;
    };
    return { ...r, report, row };
  }

  /** The pid a daemon of `w` wrote in its pid file. */
  pid(w: Worker, role: "agent" | "updater"): number {
    const f = readPidFile(role === "agent" ? w.paths.agentPid : w.paths.updater.pid);
    if (!f) throw new Error(`no ${role} pid file for ${w.name}`);
    return f.pid;
  }

  worker(name: string): Worker {
    const w = this.workers.find((x) => x.name === name);
    if (!w) throw new Error(`no worker ${name}`);
    return w;
  }

  /** `decnet updater …` for this worker, as the updater rebuilds its own command line (lib/config.ts). */
  updaterArgs(w: Worker, flags: { agentSupervisor?: "spawn" | "systemd"; port?: string } = {}): string[] {
    return updaterArgv(resolveUpdaterConfig({ host: w.address, updaterDir: w.updaterBundle, agentDir: w.agentBundle, installDir: w.installDir, ...flags }));
  }

  /** `decnet updater --daemon`; resolves once it answers. */
  async startUpdater(w: Worker, env: Record<string, string> = {}, bin = this.bin): Promise<number> {
    const r = await runCli(bin, [...this.updaterArgs(w), "--daemon"], { ...this.env, ...env }, { cwd: this.root });
    if (r.code !== 0) throw new Error(`updater ${w.name} did not start: ${r.stderr}`);
    return this.pid(w, "updater");
  }

  async startAgent(w: Worker, opts: { bin?: string; env?: Record<string, string> } = {}): Promise<number> {
    const r = await runCli(opts.bin ?? this.bin, [...agentArgv({ host: w.address, agentPort: 8765, agentDir: w.agentBundle, installDir: w.installDir }), "--daemon"], { ...this.env, ...opts.env });
    if (r.code !== 0) throw new Error(`agent ${w.name} did not start: ${r.stderr}`);
    return this.pid(w, "agent");
  }

  /** Starts every worker's updater; no release is installed yet. */
  async startAll(): Promise<void> {
    await Promise.all(this.workers.map((w) => this.startUpdater(w)));
  }

  master(): Bundle {
    this.masterBundle ??= readBundle(bundlePaths(join(this.env.DECNET_HOME!, "ca", "master"), "worker"), "run a swarm command first");
    return this.masterBundle;
  }

  /** mTLS request as the master (or as `as`), checking the server's CN. */
  async request(w: Worker, role: "agent" | "updater", path: string, init: RequestInit & { as?: Bundle } = {}): Promise<Response> {
    const port = role === "agent" ? 8765 : 8766;
    const cn = role === "agent" ? w.name : `updater@${w.name}`;
    const { as, ...rest } = init;
    return fetch(`https://${w.address}:${port}${path}`, { ...rest, tls: clientTls(as ?? this.master(), cn), signal: rest.signal ?? AbortSignal.timeout(60_000) } as RequestInit);
  }

  async health(w: Worker): Promise<UpdaterHealth> {
    return (await (await this.request(w, "updater", updaterApi.health.path)).json()) as UpdaterHealth;
  }

  async releases(w: Worker): Promise<ReleasesResponse> {
    return (await (await this.request(w, "updater", updaterApi.releases.path)).json()) as ReleasesResponse;
  }

  /** POST /update with a tarball (or raw bytes). */
  async push(w: Worker, body: string | Uint8Array): Promise<{ status: number; body: any }> {
    const data = typeof body === "string" ? Bun.file(body) : body;
    const res = await this.request(w, "updater", pathWithQuery(updaterApi.update), { method: updaterApi.update.method, body: data });
    const text = await res.text();
    let parsed: unknown = text;
    try { parsed = JSON.parse(text); } catch {}
    return { status: res.status, body: parsed };
  }

  /** Every process started for this fleet (its paths appear in their argv). */
  processes(): number[] {
    return allPids().filter((p) => p !== process.pid && isAlive(p) && cmdline(p).some((a) => a.startsWith(this.root)));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const sig of ["SIGTERM", "SIGKILL"] as const) {
      const pids = this.processes();
      for (const p of pids) try { process.kill(p, sig); } catch {}
      const deadline = Date.now() + 3_000;
      while (this.processes().length && Date.now() < deadline) await Bun.sleep(20);
      if (!this.processes().length) break;
    }
    if (!process.env.DECNET_KEEP_FLEET) rmSync(this.root, { recursive: true, force: true });
  }
}


/**
 * A release whose `decnet` is a wrapper that execs the real binary (shipped
 * beside it as a second manifest file) — except when `fails(argv)` says so,
 * where it runs the shell code `then` instead.
 */
async function wrapperRelease(out: string, caseArm: string): Promise<Packed> {
  const { mkdtempSync, copyFileSync, chmodSync, writeFileSync, statSync } = await import("node:fs");
  const { manifestFor } = await import("../../src/protocol/manifest.ts");
  const { writeTarball } = await import("../../src/lib/tarball.ts");
  const { sha256File } = await import("../../src/core/release.ts");
  const b = await binaries();
  const dir = mkdtempSync(join(tmpdir(), "decnet-wrapper-"));
  const script = `#!/bin/sh\ncase " $* " in\n${caseArm}\nesac\nexec "$(dirname "$0")/decnet-real" "$@"\n`;
  writeFileSync(join(dir, "decnet"), script);
  copyFileSync(b.bin, join(dir, "decnet-real"));
  for (const f of ["decnet", "decnet-real"]) chmodSync(join(dir, f), 0o755);
  const files = await Promise.all(["decnet", "decnet-real"].map(async (p) => ({ path: p, mode: "0755", size: statSync(join(dir, p)).size, sha256: await sha256File(join(dir, p)) })));
  const m = manifestFor({ version: b.version, git: { sha: "fixture", dirty: false }, target: "linux-x64" }, files);
  writeFileSync(join(dir, "manifest.json"), JSON.stringify(m));
  await writeTarball(out, dir, ["manifest.json", "decnet", "decnet-real"]);
  rmSync(dir, { recursive: true, force: true });
  return { file: out, id: m.id, version: b.version };
}

/**
 * A release that is healthy everywhere except on `failAddress`: its agent
 * exits at once when started on that address — like a release that needs a
 * host setting one host lacks.
 */
export function hostDependentRelease(failAddress: string, out: string): Promise<Packed> {
  return wrapperRelease(out, `  *" --host ${failAddress} "*) echo "fixture: this host lacks /etc/decnet/needed.conf" >&2; exit 3;;`);
}

/**
 * A release that is a healthy agent and passes the updater's preflight, but
 * whose updater, once it runs for real, dies at once ("dies") or never
 * serves ("hangs"): what a self-update must survive.
 */
export function brokenUpdaterRelease(mode: "dies" | "hangs", out: string): Promise<Packed> {
  const arm = mode === "dies" ? `echo "fixture: this updater dies at start" >&2; exit 3` : `echo "fixture: this updater hangs at start" >&2; exec sleep 600`;
  return wrapperRelease(out, `  *" --preflight "*|*" --watch-self-update "*) ;;\n  " updater "*) ${arm};;`);
}
