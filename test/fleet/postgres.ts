/**
 * A throwaway PostgreSQL server for tests (DESIGN §15): Debian's binaries,
 * its own data dir under a temp dir, trust auth, a unix socket there plus a
 * free port on 127.0.0.1, run as the `postgres` user (initdb refuses root).
 * `await using` stops it and removes the data. Each test makes its own
 * database with `createDb`.
 */
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The newest installed server's bin dir, or null. */
function pgBin(): string | null {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return null;
  const versions = readdirSync(root).filter((v) => existsSync(join(root, v, "bin/initdb"))).sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], "bin") : null;
}

/** Why PostgreSQL tests cannot run here, or null when they can. */
export function postgresMissing(): string | null {
  if (!pgBin()) return "PostgreSQL is not installed (apt-get install postgresql; .ci/run does)";
  if (process.getuid?.() === 0) {
    const r = Bun.spawnSync(["id", "-u", "postgres"]);
    if (r.exitCode !== 0) return "there is no `postgres` user to run initdb as (it refuses root)";
  }
  return null;
}

async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

function asPostgres(argv: string[]): string[] {
  return process.getuid?.() === 0 ? ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", ...argv] : argv;
}

export class Postgres implements AsyncDisposable {
  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly bin: string,
  ) {}

  /** postgres://…@127.0.0.1:PORT/DB (the superuser, trust auth). */
  url(db = "postgres", user = "postgres"): string {
    return `postgres://${user}@127.0.0.1:${this.port}/${db}`;
  }

  /** Runs SQL with psql as the superuser; stdout (unaligned, tuples only). */
  async psql(db: string, sql: string, user = "postgres"): Promise<string> {
    const p = Bun.spawn(["psql", "-h", "127.0.0.1", "-p", String(this.port), "-U", user, "-d", db, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql], {
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, PGCONNECT_TIMEOUT: "5" },
    });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    if (code !== 0) throw new Error(`psql: ${err.trim()}`);
    return out.trim();
  }

  /** A fresh database with a unique name; returns its name. */
  async createDb(prefix = "t"): Promise<string> {
    const name = `${prefix}_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
    await this.psql("postgres", `CREATE DATABASE ${name}`);
    return name;
  }

  static async start(): Promise<Postgres> {
    const missing = postgresMissing();
    if (missing) throw new Error(missing);
    const bin = pgBin()!;
    const dir = mkdtempSync(join(tmpdir(), "decnet-pg-"));
    chmodSync(dir, 0o755);
    const data = join(dir, "data");
    if (process.getuid?.() === 0) chownSync(dir, Number(Bun.spawnSync(["id", "-u", "postgres"]).stdout.toString()), Number(Bun.spawnSync(["id", "-g", "postgres"]).stdout.toString()));
    const init = Bun.spawnSync(asPostgres([join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]), { stdout: "pipe", stderr: "pipe" });
    if (init.exitCode !== 0) throw new Error(`initdb failed: ${init.stderr.toString().trim()}`);
    const port = await freePort();
    const ctl = Bun.spawnSync(
      asPostgres([join(bin, "pg_ctl"), "-D", data, "-l", join(dir, "server.log"), "-w", "-t", "30", "-o", `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c fsync=off -c max_connections=100`, "start"]),
      { stdout: "pipe", stderr: "pipe" },
    );
    if (ctl.exitCode !== 0) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`pg_ctl start failed: ${ctl.stderr.toString().trim() || ctl.stdout.toString().trim()}`);
    }
    return new Postgres(dir, port, bin);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    Bun.spawnSync(asPostgres([join(this.bin, "pg_ctl"), "-D", join(this.dir, "data"), "-m", "immediate", "-w", "stop"]), { stdout: "ignore", stderr: "ignore" });
    rmSync(this.dir, { recursive: true, force: true });
  }
}
