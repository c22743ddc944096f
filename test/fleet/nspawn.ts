/**
 * A real systemd for tests (shared/recipes/real-systemd.md): a Debian rootfs
 * debootstrapped once into a cache kept between runs, copied per container,
 * booted by systemd-nspawn with systemd as its PID 1 in a network namespace
 * of its own. Commands run inside through nsenter; `await using` halts it.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { isAlive, readLink } from "../../src/lib/procfs.ts";
import { type CliResult, runCli, until } from "./harness.ts";

/** Kept between CI runs on the same machine; DECNET_TEST_CACHE moves it. */
export const TEST_CACHE = process.env.DECNET_TEST_CACHE ?? join(homedir(), ".cache/decnet-test");
const SUITE = "trixie";
const MIRROR = process.env.DECNET_TEST_DEBIAN_MIRROR ?? "http://deb.debian.org/debian";
const PACKAGES = "systemd,systemd-sysv,dbus";
/** Bump when what goes into the rootfs changes: a new name is a new cache entry. */
const ROOTFS = join(TEST_CACHE, `rootfs-${SUITE}-1`);
const COMPLETE = ".decnet-rootfs-complete";

const which = (cmd: string) => Bun.which(cmd, { PATH: `${process.env.PATH ?? ""}:/usr/sbin:/sbin` });

/**
 * The cached rootfs, debootstrapped when missing (~50–80 s, once). Built in a
 * temp dir and renamed into place under a lock, so neither a second process
 * nor an interrupted build ever sees half a rootfs.
 */
async function ensureRootfs(): Promise<void> {
  if (existsSync(join(ROOTFS, COMPLETE))) return;
  mkdirSync(TEST_CACHE, { recursive: true });
  const t0 = performance.now();
  console.log(`nspawn: building the ${SUITE} rootfs in ${ROOTFS} (debootstrap from ${MIRROR}, once)`);
  const script = [
    `[ -e '${ROOTFS}/${COMPLETE}' ] && exit 0`,
    `tmp='${ROOTFS}.building.'$$`,
    `rm -rf "$tmp" '${ROOTFS}'`,
    `debootstrap --variant=minbase --include=${PACKAGES} ${SUITE} "$tmp" '${MIRROR}' >'${ROOTFS}.log' 2>&1 || { tail -n 3 '${ROOTFS}.log' >&2; rm -rf "$tmp"; exit 1; }`,
    // A persistent journal: readable after a reboot, and from the host after the container stops.
    `mkdir -p "$tmp/var/log/journal"`,
    `touch "$tmp/${COMPLETE}" && mv "$tmp" '${ROOTFS}'`,
  ].join("\n");
  const r = await runCli("flock", ["-w", "900", join(TEST_CACHE, "rootfs.lock"), "sh", "-c", script], {}, { timeoutMs: 1_000_000 });
  if (r.code !== 0) throw new Error(`debootstrap of ${SUITE} from ${MIRROR} failed: ${r.stderr.trim().split("\n").at(-1) ?? `exit ${r.code}`}`);
  console.log(`nspawn: rootfs ready in ${Math.round(performance.now() - t0)} ms`);
}

let unavailable: Promise<string | null> | undefined;

/** Why containers cannot run here, or null when they can (then the rootfs exists). */
export function nspawnUnavailable(): Promise<string | null> {
  unavailable ??= (async () => {
    if (process.getuid?.() !== 0) return "systemd-nspawn needs root";
    for (const cmd of ["systemd-nspawn", "nsenter", "flock"]) if (!which(cmd)) return `${cmd} is not installed (apt-get install systemd-container util-linux)`;
    if (!existsSync(join(ROOTFS, COMPLETE)) && !which("debootstrap")) return "debootstrap is not installed and no cached rootfs exists";
    try {
      await ensureRootfs();
    } catch (e) {
      return (e as Error).message;
    }
    return null;
  })();
  return unavailable;
}

const parentOf = (pid: number): number | null => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return null;
  }
};

export interface BootOptions {
  /** Extra systemd-nspawn arguments, e.g. `--bind-ro=/host/path:/path`. */
  nspawnArgs?: string[];
}

/** One booted container: its own copy of the rootfs, its own systemd and network namespace. */
export class Container implements AsyncDisposable {
  private proc!: ReturnType<typeof Bun.spawn>;
  /** The container's PID 1 as the host sees it. */
  leader = 0;
  /** Milliseconds from starting systemd-nspawn to `is-system-running` answering `running`, per boot. */
  readonly boots: number[] = [];

  private constructor(
    readonly name: string,
    readonly dir: string,
    private opts: BootOptions,
  ) {}

  get rootfs(): string {
    return join(this.dir, "rootfs");
  }

  /** Copies the cached rootfs (call nspawnUnavailable() first) and boots it. */
  static async boot(name: string, opts: BootOptions = {}): Promise<Container> {
    const dir = mkdtempSync(join(tmpdir(), "decnet-nspawn-"));
    const c = new Container(name, dir, opts);
    const cp = await runCli("cp", ["-a", "--reflink=auto", ROOTFS, c.rootfs], {});
    if (cp.code !== 0) throw new Error(`copying the rootfs failed: ${cp.stderr}`);
    await Bun.write(join(c.rootfs, "etc/hostname"), `${name}\n`);
    await c.start();
    return c;
  }

  private async start(): Promise<void> {
    const t0 = performance.now();
    const console_ = Bun.file(join(this.dir, "console.log"));
    this.proc = Bun.spawn(
      ["systemd-nspawn", "-D", this.rootfs, "-M", this.name, "--boot", "--register=no", "--keep-unit", "--private-network",
        "--resolv-conf=off", "--link-journal=no", "--console=read-only", ...(this.opts.nspawnArgs ?? [])],
      // A pure cgroup2 tree: without it systemd 257 boots "tainted: cgroupsv1".
      { env: { ...process.env, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: "1" }, stdin: "ignore", stdout: console_, stderr: console_, detached: true },
    );
    const nspawn = this.proc.pid;
    this.leader = await until(() => {
      if (this.proc.exitCode !== null) throw new Error(`systemd-nspawn exited ${this.proc.exitCode}: ${this.console().slice(-2000)}`);
      const child = readdirSync("/proc").filter((d) => /^\d+$/.test(d)).map(Number).find((p) => parentOf(p) === nspawn);
      return child && readFileSync(`/proc/${child}/comm`, "utf8").trim() === "systemd" ? child : 0;
    }, `${this.name}'s systemd to start`, 30_000);
    // The first calls fail while the container is still being set up.
    const state = await until(async () => {
      if (this.proc.exitCode !== null) throw new Error(`systemd-nspawn exited ${this.proc.exitCode}: ${this.console().slice(-2000)}`);
      const r = await this.cx(["systemctl", "is-system-running", "--wait"], { timeoutMs: 30_000 });
      return ["running", "degraded"].includes(r.stdout.trim()) ? r.stdout.trim() : "";
    }, `${this.name} to boot`, 60_000);
    if (state === "degraded") {
      const failed = await this.cx(["systemctl", "--failed", "--no-legend", "--plain"]);
      console.log(`nspawn: ${this.name} booted degraded: ${failed.stdout.trim()}`);
    }
    this.boots.push(Math.round(performance.now() - t0));
  }

  console(): string {
    try {
      return readFileSync(join(this.dir, "console.log"), "utf8");
    } catch {
      return "";
    }
  }

  /** Runs argv inside the container (all its namespaces, a clean environment), as root. */
  cx(argv: string[], opts: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<CliResult> {
    const env = Object.entries({ PATH: "/usr/sbin:/usr/bin:/sbin:/bin", HOME: "/root", SYSTEMD_PAGER: "", ...opts.env }).map(([k, v]) => `${k}=${v}`);
    return runCli("nsenter", ["-t", String(this.leader), "-m", "-u", "-i", "-p", "-C", "-r", "-w", "--", "/usr/bin/env", "-i", ...env, ...argv], {}, { timeoutMs: opts.timeoutMs ?? 60_000 });
  }

  sh(script: string, opts: { timeoutMs?: number } = {}): Promise<CliResult> {
    return this.cx(["sh", "-c", script], opts);
  }

  /** Runs a host program in the container's network namespace only (the master, curl). */
  net(argv: string[], env: Record<string, string> = {}, opts: { cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
    return runCli("nsenter", ["-t", String(this.leader), "-n", "--", ...argv], env, opts);
  }

  /** `systemctl show` of a unit, as a record. */
  async unit(name: string, props = ["ActiveState", "SubState", "MainPID", "NRestarts"]): Promise<Record<string, string>> {
    const r = await this.cx(["systemctl", "show", ...props.flatMap((p) => ["-p", p]), name]);
    return Object.fromEntries(r.stdout.trim().split("\n").filter(Boolean).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
  }

  /** `systemctl reboot` inside; nspawn exits (133) and the same rootfs boots again. Returns the ms it took. */
  async reboot(): Promise<number> {
    const t0 = performance.now();
    await this.cx(["systemctl", "reboot"]);
    const code = await Promise.race([this.proc.exited, Bun.sleep(60_000).then(() => null)]);
    if (code === null) throw new Error(`${this.name} did not go down within 60 s of systemctl reboot`);
    await this.start();
    return Math.round(performance.now() - t0);
  }

  /** Processes whose root is this container's rootfs (what a killed nspawn would leave). */
  private inside(): number[] {
    return readdirSync("/proc").filter((d) => /^\d+$/.test(d)).map(Number).filter((p) => readLink(`/proc/${p}/root`)?.startsWith(this.rootfs));
  }

  /** Halts the container (SIGTERM to nspawn: a clean poweroff), then removes its copy. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.proc && this.proc.exitCode === null) {
      this.proc.kill("SIGTERM");
      const code = await Promise.race([this.proc.exited, Bun.sleep(30_000).then(() => null)]);
      if (code === null) {
        console.log(`nspawn: ${this.name} did not halt within 30 s; killing what is left`);
        this.proc.kill("SIGKILL");
      }
    }
    // SIGKILL of nspawn leaves the container's processes behind: never leave them.
    for (const p of this.inside()) try { process.kill(p, "SIGKILL"); } catch {}
    await until(() => this.inside().filter(isAlive).length === 0, `${this.name}'s processes to end`, 10_000).catch(() => {});
    if (!process.env.DECNET_KEEP_FLEET) rmSync(this.dir, { recursive: true, force: true });
    else console.log(`nspawn: kept ${this.dir}`);
  }
}
