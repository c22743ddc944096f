/**
 * A real Docker engine for tests (shared/recipes/real-docker.md): dockerd
 * started here with its own data root, exec root and socket, no bridge and
 * no iptables or forwarding changes; compose v2 as a CLI plugin; a busybox
 * image made locally (no registry is reachable). `await using` stops it.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isAlive } from "../../src/lib/procfs.ts";
import { type CliResult, runCli, until } from "./harness.ts";
import { TEST_CACHE } from "./nspawn.ts";

export const IMAGE = "local/busybox:1";
const which = (cmd: string) => Bun.which(cmd, { PATH: `${process.env.PATH ?? ""}:/usr/sbin:/sbin` });
/** The CLI from the engine's own package when there is one (another on PATH may expect a newer engine). */
const dockerCli = () => (existsSync("/usr/bin/docker") ? "/usr/bin/docker" : which("docker"));
/** Compose v2's plugin: where .ci/run puts it (TEST_CACHE), or where a package does. */
export const composePlugin = () =>
  [join(TEST_CACHE, "cli-plugins/docker-compose"), "/usr/libexec/docker/cli-plugins/docker-compose", "/usr/local/lib/docker/cli-plugins/docker-compose", "/usr/lib/docker/cli-plugins/docker-compose"].find((p) => existsSync(p)) ?? null;

export class Dockerd implements AsyncDisposable {
  private constructor(
    readonly dir: string,
    readonly cli: string,
    private proc: ReturnType<typeof Bun.spawn>,
  ) {}

  get sock(): string {
    return join(this.dir, "docker.sock");
  }

  /** What the docker CLI (and an agent that runs it) needs in its environment. */
  get env(): Record<string, string> {
    return { DOCKER_HOST: `unix://${this.sock}`, DOCKER_CONFIG: join(this.dir, "docker-config") };
  }

  docker(args: string[]): Promise<CliResult> {
    return runCli(this.cli, args, this.env, { timeoutMs: 60_000 });
  }

  /** Starts dockerd and makes the busybox image; throws with the reason when it cannot. */
  static async start(): Promise<Dockerd> {
    const dockerd = which("dockerd");
    const cli = dockerCli();
    const plugin = composePlugin();
    if (process.getuid?.() !== 0) throw new Error("dockerd needs root");
    if (!dockerd || !cli) throw new Error("dockerd or the docker CLI is not installed (apt-get install docker.io)");
    if (!plugin) throw new Error(`the compose v2 plugin is missing (.ci/run puts it in ${join(TEST_CACHE, "cli-plugins")})`);
    if (!existsSync("/bin/busybox")) throw new Error("/bin/busybox is missing (apt-get install busybox-static)");
    const dir = mkdtempSync(join(tmpdir(), "decnet-docker-"));
    mkdirSync(join(dir, "docker-config/cli-plugins"), { recursive: true });
    symlinkSync(plugin, join(dir, "docker-config/cli-plugins/docker-compose"));
    const log = Bun.file(join(dir, "dockerd.log"));
    const proc = Bun.spawn(
      [dockerd, "--data-root", join(dir, "data"), "--exec-root", join(dir, "exec"), "-H", `unix://${join(dir, "docker.sock")}`, "--pidfile", join(dir, "dockerd.pid"),
        "--bridge=none", "--iptables=false", "--ip-forward=false", "--ip-masq=false"],
      { stdin: "ignore", stdout: log, stderr: log, detached: true },
    );
    const d = new Dockerd(dir, cli, proc);
    try {
      await until(async () => {
        if (proc.exitCode !== null) throw new Error(`dockerd exited ${proc.exitCode}: ${d.log().trim().split("\n").slice(-3).join(" | ")}`);
        return (await d.docker(["version", "--format", "{{.Server.Version}}"])).code === 0;
      }, "dockerd to answer", 30_000);
      // The image: a static busybox and three applets, from nothing.
      const rootfs = join(dir, "image");
      mkdirSync(join(rootfs, "bin"), { recursive: true });
      const made = await runCli("sh", ["-c", `cp /bin/busybox '${rootfs}/bin/' && for a in sh sleep httpd mkdir; do ln -s busybox '${rootfs}/bin/'$a; done && tar -C '${rootfs}' -c . | '${cli}' import -c 'CMD ["/bin/sh"]' - ${IMAGE}`], d.env);
      if (made.code !== 0) throw new Error(`docker import failed: ${made.stderr.trim()}`);
      const compose = await d.docker(["compose", "version"]);
      if (compose.code !== 0) throw new Error(`docker compose does not run: ${compose.stderr.trim()}`);
      return d;
    } catch (e) {
      await d[Symbol.asyncDispose]();
      throw e;
    }
  }

  log(): string {
    try {
      return readFileSync(join(this.dir, "dockerd.log"), "utf8");
    } catch {
      return "";
    }
  }

  /** Every container removed, then SIGTERM (SIGKILL would leave containers and a stale pid file), then its dirs. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.proc.exitCode === null) {
      const ids = (await this.docker(["ps", "-aq"])).stdout.trim().split("\n").filter(Boolean);
      if (ids.length) await this.docker(["rm", "-f", ...ids]);
      this.proc.kill("SIGTERM");
      const code = await Promise.race([this.proc.exited, Bun.sleep(20_000).then(() => null)]);
      if (code === null) this.proc.kill("SIGKILL");
    }
    // containerd-shim processes started for this engine, if any outlived it.
    await until(() => !existsSync(join(this.dir, "dockerd.pid")) || !isAlive(Number(readFileSync(join(this.dir, "dockerd.pid"), "utf8"))), "dockerd to exit", 10_000).catch(() => {});
    // dockerd leaves mounts (the netns file, overlays) under its roots: unmount, deepest first.
    const mounts = readFileSync("/proc/mounts", "utf8").split("\n").map((l) => l.split(" ")[1] ?? "").filter((m) => m.startsWith(`${this.dir}/`)).sort().reverse();
    for (const m of mounts) await runCli("umount", ["-l", m], {});
    if (!process.env.DECNET_KEEP_FLEET) rmSync(this.dir, { recursive: true, force: true });
  }
}
