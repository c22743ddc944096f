/**
 * install.sh the way an operator runs it: into a staging root (twice, the
 * second run changing nothing), with verified units; over a release a push
 * installed (kept, or replaced with --force); settings in .env.local; onto a
 * real dir with --no-systemd, then daemons started by hand take a push and a
 * rollback; downloads (https, checksums, {arch}); and its clear errors.
 * Under a real systemd: real-systemd.test.ts.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bundlePaths } from "../../src/lib/paths.ts";
import { Fleet, ROOT, release, runCli, type Worker } from "../fleet/harness.ts";

// Real daemons and 50 MB releases; set per file (a preload only reaches the first file).
setDefaultTimeout(90_000);

let fleet: Fleet;
let w: Worker;
/**
 * install.sh in a world-readable dir of its own: the checkout may sit under a
 * 0700 dir (a mktemp -d, /root/...) where another uid cannot read it.
 */
let script: string;
beforeAll(async () => {
  fleet = await Fleet.create({ workers: 1 });
  w = fleet.worker("w1");
  const dir = mkdtempSync(join(tmpdir(), "decnet-install-sh-"));
  chmodSync(dir, 0o755);
  script = join(dir, "install.sh");
  cpSync(join(ROOT, "install.sh"), script);
  chmodSync(script, 0o644);
}, 180_000);
afterAll(async () => {
  rmSync(join(script, ".."), { recursive: true, force: true });
  await fleet[Symbol.asyncDispose]();
});

async function install(args: string[], env: Record<string, string> = {}, prefix: string[] = [], stdin?: Blob) {
  const p = Bun.spawn([...prefix, "sh", ...(stdin ? ["-s", "--"] : [script]), ...args], { env: { ...process.env, ...env }, stdin: stdin ?? "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

/** Every path under `dir` with its type, mode and (for files) size and mtime. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      const st = statSync(p, { throwIfNoEntry: false }) ?? null;
      const l = (() => { try { return readlinkSync(p); } catch { return null; } })();
      out[p.slice(dir.length)] = l ? `-> ${l}` : st?.isDirectory() ? `dir ${(st.mode & 0o777).toString(8)}` : `${(st!.mode & 0o777).toString(8)} ${st!.size} ${st!.mtimeMs}`;
      if (!l && st?.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

test("install.sh --root, twice: layout, units, bundles and modes right; the second run changes nothing; units verify", async () => {
  const root = join(fleet.root, "image");
  const args = ["--binary", fleet.bin, "--bundle", w.agentBundle, "--updater-bundle", w.updaterBundle, "--root", root];
  const env = { DECNET_HOME: "/var/lib/decnet" };
  const first = await install(args, env);
  const after1 = tree(root);
  const second = await install(args, env);
  const id = readlinkSync(join(root, "opt/decnet/current")).replace("releases/", "");
  const version = JSON.parse((await runCli(join(root, "opt/decnet/current/decnet"), ["version", "--json"], {})).stdout);
  const unit = readFileSync(join(root, "etc/systemd/system/decnet-updater.service"), "utf8");
  expect({
    codes: [first.code, second.code],
    second: second.stdout.trim().split("\n").at(-1),
    unchanged: tree(root),
    runs: { release: version.release },
    slots: { agent: readlinkSync(join(root, "opt/decnet/current")), updater: readlinkSync(join(root, "opt/decnet/updater/current")) },
    files: readdirSync(join(root, "opt/decnet/releases", id)).sort(),
    modes: {
      agentDir: after1["/var/lib/decnet/agent"],
      agentKey: after1["/var/lib/decnet/agent/worker.key"]!.split(" ")[0],
      updaterKey: after1["/var/lib/decnet/updater/updater.key"]!.split(" ")[0],
      exe: after1[`/opt/decnet/releases/${id}/decnet`]!.split(" ")[0],
    },
    enabled: readdirSync(join(root, "etc/systemd/system/multi-user.target.wants")).sort(),
    execStart: unit.split("\n").find((l) => l.startsWith("ExecStart=")),
  }).toEqual({
    codes: [0, 0],
    second: `install.sh: installed release ${id.slice(0, 12)} in ${root}/opt/decnet (0 change(s))`,
    unchanged: after1,
    runs: { release: id },
    slots: { agent: `releases/${id}`, updater: `releases/${id}` },
    files: ["decnet", "manifest.json"],
    modes: { agentDir: "dir 700", agentKey: "600", updaterKey: "600", exe: "755" },
    enabled: ["decnet-agent.service", "decnet-updater.service"],
    execStart: "ExecStart=/opt/decnet/updater/current/decnet updater --install-dir /opt/decnet --updater-dir /var/lib/decnet/updater --agent-dir /var/lib/decnet/agent --agent-supervisor systemd",
  });
  // systemd's own units, so that `verify` can resolve the targets the units name.
  mkdirSync(join(root, "lib/systemd"), { recursive: true });
  cpSync("/lib/systemd/system", join(root, "lib/systemd/system"), { recursive: true });
  const verify = Bun.spawnSync(["systemd-analyze", "verify", `--root=${root}`, "/etc/systemd/system/decnet-updater.service", "/etc/systemd/system/decnet-agent.service"], { stderr: "pipe" });
  expect({ code: verify.exitCode, stderr: verify.stderr.toString() }).toEqual({ code: 0, stderr: "" });
});

test("a worker installed with --no-systemd, daemons started by hand, accepts a push and a rollback to its first release", async () => {
  const home = join(fleet.root, "worker-home");
  const r = await install(["--binary", fleet.bin, "--bundle", w.agentBundle, "--updater-bundle", w.updaterBundle, "--install-dir", w.installDir, "--no-systemd"], { DECNET_HOME: home });
  expect(r.code).toBe(0);
  const first = readlinkSync(w.paths.current).replace("releases/", "");
  const up = await runCli(join(w.installDir, "updater/current/decnet"), ["updater", "--host", w.address, "--install-dir", w.installDir, "--updater-dir", join(home, "updater"), "--agent-dir", join(home, "agent"), "--daemon"], fleet.env);
  expect(up.code).toBe(0);
  const v2 = await release("v2");
  const push = await fleet.cli(["swarm", "update", "--host", "w1", "--artifact", v2.file, "--json"]);
  const back = await fleet.cli(["swarm", "rollback", "--host", "w1"]);
  const h = await fleet.health(w);
  expect({ push: [push.code, JSON.parse(push.stdout).hosts[0].agent], rollback: back.code, agent: h.agent.release, healthy: h.agent.healthy }).toEqual({
    push: [0, "updated"], rollback: 0, agent: first, healthy: true,
  });
});

test("clear errors: a missing bundle, a wrong architecture, no root", async () => {
  const root = join(fleet.root, "errors");
  const missing = await install(["--binary", fleet.bin, "--bundle", join(fleet.root, "nope"), "--updater-bundle", w.updaterBundle, "--root", root]);
  const swapped = await install(["--binary", fleet.bin, "--bundle", w.updaterBundle, "--updater-bundle", w.updaterBundle, "--root", root]);
  // An ELF header for aarch64 on this x86_64 machine (or the reverse).
  const foreign = join(fleet.root, "foreign");
  const elf = new Uint8Array(64);
  elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  elf[18] = process.arch === "arm64" ? 0x3e : 0xb7;
  writeFileSync(foreign, elf);
  const arch = await install(["--binary", foreign, "--bundle", w.agentBundle, "--updater-bundle", w.updaterBundle, "--root", root]);
  const nobody = await install(["--binary", fleet.bin, "--bundle", w.agentBundle, "--updater-bundle", w.updaterBundle, "--no-systemd"], {}, ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]);
  const usage = await install(["--bundle", w.agentBundle]);
  expect({
    missing: [missing.code, missing.stderr.includes(`bundle dir ${join(fleet.root, "nope")} does not exist`)],
    swapped: [swapped.code, swapped.stderr.includes("lacks worker.crt")],
    arch: [arch.code, /is built for (aarch64|x86_64), this machine is/.test(arch.stderr)],
    nobody: [nobody.code, nobody.stderr.includes("must run as root")],
    usage: [usage.code, usage.stderr.includes("give --binary PATH or --url URL")],
    wroteNothing: (() => { try { return readdirSync(root).length; } catch { return 0; } })(),
  }).toEqual({ missing: [1, true], swapped: [1, true], arch: [1, true], nobody: [1, true], usage: [2, true], wroteNothing: 0 });
});

test("install.sh --url: https only (plain http needs --insecure), {arch} filled in, the digest from --sha256 or URL.sha256, redirects to http refused; a failure writes nothing", async () => {
  const bytes = await Bun.file(fleet.bin).bytes();
  const sha = new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
  const arch = process.arch === "arm64" ? "linux-arm64" : "linux-x64";
  // A file server on loopback, as `curl | sh -s -- --url …` would reach one: https with a
  // certificate decnet issued (curl trusts its CA through CURL_CA_BUNDLE), and plain http.
  const tls = bundlePaths(w.agentBundle, "worker");
  const routes = (base: () => string) => (req: Request) => {
    const path = new URL(req.url).pathname;
    if (path === `/decnet-${arch}`) return new Response(bytes);
    if (path === `/decnet-${arch}.sha256`) return new Response(`${sha}  decnet-${arch}\n`);
    if (path === "/to-http") return Response.redirect(`${base()}/decnet-${arch}`, 302);
    return new Response("not found", { status: 404 });
  };
  await using plain = Bun.serve({ hostname: w.address, port: 0, fetch: routes(() => "") });
  const httpUrl = `http://${w.address}:${plain.port}`;
  await using secure = Bun.serve({ hostname: w.address, port: 0, tls: { cert: Bun.file(tls.crt), key: Bun.file(tls.key) }, fetch: routes(() => httpUrl) });
  const httpsUrl = `https://${w.address}:${secure.port}`;
  const env = { CURL_CA_BUNDLE: tls.ca };
  const run = async (name: string, args: string[]) => {
    const root = join(fleet.root, `url-${name}`);
    const r = await install(["--bundle", w.agentBundle, "--updater-bundle", w.updaterBundle, "--no-systemd", "--root", root, ...args], env);
    const current = (() => { try { return readlinkSync(join(root, "opt/decnet/current")).startsWith("releases/"); } catch { return false; } })();
    return { code: r.code, out: `${r.stdout}${r.stderr}`.trim().split("\n"), current, left: existsSync(root) ? readdirSync(root).length : 0 };
  };
  const err = (r: Awaited<ReturnType<typeof run>>) => [r.code, r.out.at(-1), r.left];
  const results = {
    arch: await run("arch", ["--url", `${httpsUrl}/decnet-{arch}`]),
    wrong: await run("wrong", ["--url", `${httpsUrl}/decnet-{arch}`, "--sha256", "0".repeat(64)]),
    noDigest: await run("nodigest", ["--url", `${httpsUrl}/nothing-here`]),
    http: await run("http", ["--url", `${httpUrl}/decnet-${arch}`, "--sha256", sha]),
    insecure: await run("insecure", ["--url", `${httpUrl}/decnet-${arch}`, "--sha256", sha.toUpperCase(), "--insecure"]),
    toHttp: await run("tohttp", ["--url", `${httpsUrl}/to-http`, "--sha256", sha]),
  };
  expect({
    arch: [results.arch.code, results.arch.out[0], results.arch.current],
    wrong: err(results.wrong),
    noDigest: err(results.noDigest),
    http: err(results.http),
    insecure: [results.insecure.code, results.insecure.current],
    toHttp: err(results.toHttp),
  }).toEqual({
    arch: [0, `install.sh: no --sha256: checking the download against ${httpsUrl}/decnet-${arch}.sha256, from the same origin`, true],
    wrong: [1, `install.sh: error: sha256 of ${join(fleet.root, "url-wrong")}/opt/decnet/${results.wrong.out.at(-1)!.split("/opt/decnet/")[1]!.split(" ")[0]} is ${sha}, expected ${"0".repeat(64)}`, 0],
    noDigest: [1, `install.sh: error: --url needs --sha256 HEX: ${httpsUrl}/nothing-here.sha256 could not be fetched`, 0],
    http: [2, `install.sh: refusing plain http (${httpUrl}/decnet-${arch}): anyone on the path can change the binary; use https, or --insecure with --sha256 (see --help)`, 0],
    insecure: [0, true],
    toHttp: [1, `install.sh: error: download of ${httpsUrl}/to-http failed`, 0],
  });
});

test("a second install.sh keeps the release a push installed (--force replaces it), adds a history entry, and edits only its own keys in .env.local", async () => {
  const root = join(fleet.root, "kept");
  const v2 = await release("v2");
  const base = ["--bundle", w.agentBundle, "--updater-bundle", w.updaterBundle, "--no-systemd", "--root", root];
  const first = await install(["--binary", fleet.bin, ...base]);
  const dir = join(root, "opt/decnet");
  const v1 = readlinkSync(join(dir, "current")).replace("releases/", "");
  writeFileSync(join(dir, ".env.local"), "# the operator's\nDECNET_COMPOSE_BIN=/usr/local/bin/docker\nDECNET_HOST=10.0.0.1\n");
  // v2's executable, installed over v1 as a push would leave it (current → v2, previous → v1).
  const unpacked = join(fleet.root, "v2-unpacked");
  mkdirSync(unpacked);
  await runCli("tar", ["-xzf", v2.file, "-C", unpacked], {});
  const kept = await install(["--binary", join(unpacked, "decnet"), ...base, "--host", "127.0.0.9", "--agent-port", "9765", "--updater-port", "9766"]);
  const afterKept = { current: readlinkSync(join(dir, "current")), env: readFileSync(join(dir, ".env.local"), "utf8") };
  const forced = await install(["--binary", join(unpacked, "decnet"), ...base, "--force", "--host", "127.0.0.9", "--agent-port", "9765", "--updater-port", "9766"]);
  const history = JSON.parse(readFileSync(join(dir, "history.json"), "utf8"));
  const badPort = await install(["--binary", fleet.bin, ...base, "--agent-port", "99999"]);
  expect({
    codes: [first.code, kept.code, forced.code],
    kept: kept.stdout.trim().split("\n"),
    afterKept,
    forced: [forced.stdout.trim().split("\n").at(-1), readlinkSync(join(dir, "current")), readlinkSync(join(dir, "previous"))],
    history: Object.fromEntries(Object.entries(history).map(([id, e]: [string, any]) => [id, [e.status, typeof e.installed_at]])),
    badPort: [badPort.code, badPort.stderr.trim()],
  }).toEqual({
    codes: [0, 0, 0],
    kept: [
      `install.sh: agent: keeps current -> releases/${v1} (${JSON.parse(await (await runCli(fleet.bin, ["version", "--json"], {})).stdout).version}); --force installs this binary instead`,
      `install.sh: updater: keeps current -> releases/${v1} (${JSON.parse(await (await runCli(fleet.bin, ["version", "--json"], {})).stdout).version}); --force installs this binary instead`,
      `install.sh: kept release ${v1.slice(0, 12)} in ${dir}, not this binary's ${v2.id.slice(0, 12)} (--force installs it) (1 change(s))`,
    ],
    afterKept: { current: `releases/${v1}`, env: "# the operator's\nDECNET_COMPOSE_BIN=/usr/local/bin/docker\nDECNET_HOST=127.0.0.9\nDECNET_AGENT_PORT=9765\nDECNET_UPDATER_PORT=9766\n" },
    forced: [`install.sh: installed release ${v2.id.slice(0, 12)} in ${dir} (6 change(s))`, `releases/${v2.id}`, `releases/${v1}`],
    history: { [v1]: ["good", "string"], [v2.id]: ["good", "string"] },
    badPort: [2, "install.sh: --agent-port must be between 1 and 65535 (see --help)"],
  });
});

test("install.sh never uses $TMPDIR and refuses an install dir others can write; --help works piped", async () => {
  // A TMPDIR another user controls (`sudo -E`): nothing of the install may go there.
  const hostile = mkdtempSync(join(tmpdir(), "decnet-hostile-tmp-"));
  chmodSync(hostile, 0o1777);
  const root = join(fleet.root, "tmpdir");
  const r = await install(["--binary", fleet.bin, "--bundle", w.agentBundle, "--updater-bundle", w.updaterBundle, "--no-systemd", "--root", root], { TMPDIR: hostile });
  const open = join(fleet.root, "open-root");
  mkdirSync(join(open, "opt/decnet"), { recursive: true });
  chmodSync(join(open, "opt/decnet"), 0o777);
  const refused = await install(["--binary", fleet.bin, "--bundle", w.agentBundle, "--updater-bundle", w.updaterBundle, "--no-systemd", "--root", open]);
  const piped = await install(["--help"], {}, [], new Blob([readFileSync(script)]));
  expect({
    code: r.code,
    hostileTmp: readdirSync(hostile),
    leftInDest: readdirSync(join(root, "opt/decnet")).filter((n) => n.startsWith(".install-tmp")),
    refused: [refused.code, refused.stderr.trim(), readdirSync(join(open, "opt/decnet"))],
    piped: [piped.code, piped.stdout.split("\n")[0], piped.stdout.includes("--updater-port N")],
  }).toEqual({
    code: 0,
    hostileTmp: [],
    leftInDest: [],
    refused: [1, `install.sh: error: ${open}/opt/decnet is writable by others (mode 777): chmod go-w ${open}/opt/decnet`, []],
    piped: [0, "Usage: install.sh (--binary PATH | --url URL [--sha256 HEX]) --bundle DIR --updater-bundle DIR [options]", true],
  });
  rmSync(hostile, { recursive: true, force: true });
});
