/**
 * Joining without copying files, with the compiled binary: `swarm enroll
 * --join` prints a token and waits, `decnet updater --join TOKEN` on an
 * empty worker makes its keys and serves only the join, the joined worker
 * takes a push, and no private key of the worker is anywhere on the master.
 * Then every refusal (reused, expired, tampered, superseded, another CA,
 * a malformed CSR), each one line on each side, and kill -9 mid-join.
 */
import { expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { createHash, X509Certificate } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { cmdline } from "../../src/lib/procfs.ts";
import { makeJoinCert } from "../../src/lib/worker-keys.ts";
import { formatToken, parseToken } from "../../src/protocol/join-token.ts";
import { helloTranscript, masterHelloProof, newNonce, workerHelloProof } from "../../src/protocol/join.ts";
import { release, runCli, until, type CliResult, type Worker } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";

const fleet = useFleet({ workers: 6, enroll: false });
const home = () => fleet.env.DECNET_HOME!;

/** One line on stderr, no stack frames. */
const oneLine = (r: CliResult) => r.stderr.trim().split("\n").length === 1 && !/\n\s+at |\.ts:\d+/.test(r.stderr);

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? filesUnder(join(dir, d.name)) : d.isFile() ? [join(dir, d.name)] : []));
}

/**
 * `swarm enroll --join` running in the background, as an operator leaves it
 * waiting: resolves the token once it is printed, and the run once it ends.
 */
async function enrollJoin(w: Worker, extra: string[] = []): Promise<{ token: string; done: Promise<CliResult> }> {
  const p = Bun.spawn([fleet.bin, "swarm", "enroll", "--host", w.name, "--address", w.address, "--join", ...extra], { env: { ...process.env, ...fleet.env }, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const timer = setTimeout(() => p.kill("SIGKILL"), 120_000);
  const reader = p.stdout.getReader();
  let stdout = "";
  while (!/^decnet-join:.*\n/m.test(stdout)) {
    const r = await reader.read();
    if (r.done) break;
    stdout += new TextDecoder().decode(r.value);
  }
  const token = /^(decnet-join:\S+)$/m.exec(stdout)?.[1] ?? "";
  const done = (async () => {
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      stdout += new TextDecoder().decode(r.value);
    }
    const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
    clearTimeout(timer);
    return { code, stdout, stderr };
  })();
  return { token, done };
}

/** `swarm enroll --join --no-wait`: the token line. */
async function openJoin(w: Worker, extra: string[] = []): Promise<string> {
  const r = await fleet.cli(["swarm", "enroll", "--host", w.name, "--address", w.address, "--join", "--no-wait", ...extra]);
  if (r.code !== 0) throw new Error(r.stderr);
  return r.stdout.split("\n")[0]!;
}

/** `decnet updater --join TOKEN` for `w`, detached (`--daemon`), or with `--preflight`. */
const updaterJoin = (w: Worker, token: string, mode: "--daemon" | "--preflight" | null = "--daemon") =>
  runCli(fleet.bin, [...fleet.updaterArgs(w), "--join", token, ...(mode ? [mode] : [])], fleet.env);

/** The worker's own log lines that mention `what`. */
const logged = (w: Worker, what: string) => readFileSync(w.paths.updater.log, "utf8").split("\n").filter((l) => l.includes(what)).map((l) => l.replace(/^\S+ updater \w+ /, ""));

/** A /join/hello as the master sends it (its proof included), straight to the worker. */
async function hello(w: Worker, token: string): Promise<{ tls_cert: string; csr: { agent: string; updater: string } }> {
  const ca = readFileSync(join(home(), "ca", "ca.crt"), "utf8");
  const nonce = newNonce();
  const res = await fetch(`https://${w.address}:8766/join/hello`, {
    method: "POST", body: JSON.stringify({ v: 1, host: w.name, ca, nonce, proof: masterHelloProof(parseToken(token), { caPem: ca, masterNonce: nonce }) }),
    headers: { "content-type": "application/json" }, tls: { rejectUnauthorized: false },
  } as RequestInit);
  return (await res.json()) as { tls_cert: string; csr: { agent: string; updater: string } };
}

test("join end to end: a token, an empty worker that makes its own keys, the join completes, a push lands, no worker key on the master", async () => {
  const w = fleet.worker("w1");
  const e = await enrollJoin(w);
  const up = await updaterJoin(w, e.token);
  const r = await e.done;
  const updaterPid = fleet.pid(w, "updater");
  const keys = [join(w.agentBundle, "worker.key"), join(w.updaterBundle, "updater.key")].map((f) => readFileSync(f, "utf8"));
  // Every line of both keys' base64, looked for in every file of the master's home.
  const keyLines = keys.flatMap((k) => k.split("\n").filter((l) => l.length > 20 && !l.startsWith("-----")));
  const onMaster = filesUnder(home()).filter((f) => keyLines.some((l) => readFileSync(f, "latin1").includes(l)));
  const v1 = await release("v1");
  const push = await fleet.update(["--host", w.name, "--artifact", v1.file]);
  using db = new Database(join(home(), "swarm.db"), { readonly: true });
  const events = db.query<{ action: string; subject: string }, []>("SELECT action, subject FROM identity_events WHERE subject = 'w1' ORDER BY id").all();
  const list = JSON.parse((await fleet.cli(["swarm", "list", "--json"])).stdout) as Array<{ name: string; address: string; has_updater: boolean }>;
  expect({
    token: /^decnet-join:1:w1:[0-9a-f]{64}:[A-Za-z0-9_-]{43}:\d+:[0-9a-f]{8}$/.test(e.token),
    enroll: { code: r.code, lines: r.stdout.trim().split("\n").length, joined: r.stdout.split("\n")[1]?.startsWith(`joined w1 (${w.address}): agent certificate `), waited: r.stderr.includes(`waiting for w1 to join at ${w.address}:8766`) },
    updater: { code: up.code, says: up.stdout.includes("waiting to join"), tokenNotInArgv: !cmdline(updaterPid).join(" ").includes("decnet-join:") },
    worker: {
      files: [readdirSync(w.agentBundle).sort(), readdirSync(w.updaterBundle).sort()],
      keyModes: [join(w.agentBundle, "worker.key"), join(w.updaterBundle, "updater.key")].map((f) => (statSync(f).mode & 0o777).toString(8)),
    },
    onMaster,
    push: { code: push.code, agent: push.row(w.name).agent },
    events: events.map((x) => x.action),
    listed: list.find((h) => h.name === w.name),
    log: logged(w, "joined as w1").length,
  }).toEqual({
    token: true,
    enroll: { code: 0, lines: 2, joined: true, waited: true },
    updater: { code: 0, says: true, tokenNotInArgv: true },
    worker: { files: [["ca.crt", "worker.crt", "worker.key"], ["ca.crt", "updater.crt", "updater.key"]], keyModes: ["600", "600"] },
    onMaster: [],
    push: { code: 0, agent: "updated" },
    events: ["join-open", "join"],
    listed: expect.objectContaining({ name: "w1", address: w.address, has_updater: true }),
    log: 1,
  });
});

test("a spent token is refused on both sides, and so is --join for a host already enrolled", async () => {
  const w = fleet.worker("w1");
  const again = await fleet.cli(["swarm", "join", "w1"]);
  const reopen = await fleet.cli(["swarm", "enroll", "--host", "w1", "--address", w.address, "--join"]);
  // The worker refuses to join again (any well-formed token), before it binds anything.
  const token = formatToken({ host: "w1", ca: "0".repeat(64), secret: "A".repeat(43), expires: Math.floor(Date.now() / 1000) + 600 });
  const workerAgain = await updaterJoin(w, token, null);
  expect({
    again: [again.code, oneLine(again), again.stderr.startsWith("decnet: the token for w1 was used already: w1 joined at ")],
    reopen: [reopen.code, reopen.stderr],
    workerAgain: [workerAgain.code, oneLine(workerAgain), workerAgain.stderr.startsWith(`decnet: this worker has joined already (${join(w.updaterBundle, "updater.crt")} is there); a join token is used once`)],
  }).toEqual({
    again: [1, true, true],
    reopen: [1, "decnet: host w1 is already enrolled: a host joins once — to give it new certificates: `decnet swarm renew --host w1`; to replace it: `decnet swarm decommission --host w1` and join it under another name\n"],
    workerAgain: [1, true, true],
  });
});

test("an expired token is refused by the worker and by the master; a tampered one by the worker, before any network", async () => {
  const w = fleet.worker("w2");
  const token = await openJoin(w, ["--ttl", "3s"]);
  const expires = parseToken(token).expires * 1000;
  const i = token.lastIndexOf(":") - 3;
  const tampered = token.slice(0, i) + (token[i] === "0" ? "1" : "0") + token.slice(i + 1);
  const tamperedRun = await updaterJoin(w, tampered, null);
  const garbage = await updaterJoin(w, "decnet-join:1:nonsense", null);
  await until(() => Date.now() > expires + 1_000, "the token to expire", 10_000, 100);
  const worker = await updaterJoin(w, token);
  const master = await fleet.cli(["swarm", "join", "w2"]);
  expect({
    tampered: [tamperedRun.code, tamperedRun.stderr],
    garbage: [garbage.code, oneLine(garbage)],
    worker: [worker.code, oneLine(worker), worker.stderr.startsWith(`decnet: join token for w2 expired at ${new Date(expires).toISOString()} — open a new join on the master`)],
    master: [master.code, oneLine(master), master.stderr.startsWith(`decnet: the token for w2 expired at ${new Date(expires).toISOString()}`)],
    nothingMade: existsSync(w.updaterBundle) ? readdirSync(w.updaterBundle) : [],
  }).toEqual({
    tampered: [2, "decnet: join token is damaged (its check digits do not match): copy it again, whole\n"],
    garbage: [2, true],
    worker: [1, true, true],
    master: [1, true, true],
    nothingMade: [],
  });
});

test("a superseded token: the worker refuses the master's proof and logs it, the master prints the worker's refusal; the newest token joins", async () => {
  const w = fleet.worker("w2");
  const old = await openJoin(w);
  const newest = await openJoin(w);
  expect((await updaterJoin(w, old)).code).toBe(0);
  const refused = await fleet.cli(["swarm", "join", "w2"]);
  const workerSaid = logged(w, "refused");
  process.kill(fleet.pid(w, "updater"), "SIGTERM");
  await until(() => !existsSync(w.paths.updater.sock), "the updater to stop");
  expect((await updaterJoin(w, newest)).code).toBe(0);
  const joined = await fleet.cli(["swarm", "join", "w2"]);
  expect({
    refused: [refused.code, refused.stderr],
    workerSaid,
    joined: [joined.code, joined.stdout.startsWith("joined w2 ")],
  }).toEqual({
    refused: [1, `decnet: w2: the worker at ${w.address} refused the join: the master's proof does not match this worker's token — the worker holds another token for this host: start it with the newest one\n`],
    workerSaid: ["POST /join/hello refused: join_refused: the master's proof does not match this worker's token"],
    joined: [0, true],
  });
});

test("a worker whose token names another CA refuses to trust the master; nothing is signed or installed", async () => {
  const w = fleet.worker("w3");
  const token = await openJoin(w);
  const forged = formatToken({ ...parseToken(token), ca: "0".repeat(64) });
  expect((await updaterJoin(w, forged)).code).toBe(0);
  const r = await fleet.cli(["swarm", "join", "w3"]);
  using db = new Database(join(home(), "swarm.db"), { readonly: true });
  const signed = db.query<{ n: number }, []>("SELECT count(*) AS n FROM certs WHERE name = 'w3'").get()!.n;
  const ca = createHash("sha256").update(new X509Certificate(readFileSync(join(home(), "ca", "ca.crt"))).raw).digest("hex");
  expect({
    code: r.code,
    line: r.stderr,
    workerSaid: logged(w, "refused"),
    signed,
    installed: existsSync(join(w.updaterBundle, "updater.crt")),
  }).toEqual({
    code: 1,
    line: `decnet: w3: the worker at ${w.address} refused the join: the master's CA (sha256 ${ca.slice(0, 16)}…) is not the CA this worker's token names (0000000000000000…) — the worker's token is not this master's (or was altered): start it with the token this master printed\n`,
    workerSaid: [`POST /join/hello refused: ca_mismatch: the master's CA (sha256 ${ca.slice(0, 16)}…) is not the CA this worker's token names (0000000000000000…)`],
    signed: 0,
    installed: false,
  });
  process.kill(fleet.pid(w, "updater"), "SIGTERM");
});

test("kill -9 of a joining updater mid-join: it starts again offering the same keys, and the join completes", async () => {
  const w = fleet.worker("w4");
  const token = await openJoin(w);
  expect((await updaterJoin(w, token)).code).toBe(0);
  const before = await hello(w, token);
  process.kill(fleet.pid(w, "updater"), "SIGKILL");
  // Started again as its unit would: no --join; it joins with the token it kept.
  const restart = await runCli(fleet.bin, [...fleet.updaterArgs(w), "--daemon"], fleet.env);
  const after = await hello(w, token);
  const joined = await fleet.cli(["swarm", "join", "w4"]);
  const health = await fleet.health(w);
  expect({
    restart: [restart.code, restart.stdout.includes("waiting to join")],
    sameKeys: after.csr.agent === before.csr.agent && after.csr.updater === before.csr.updater && after.tls_cert === before.tls_cert,
    joined: [joined.code, joined.stdout.startsWith("joined w4 ")],
    serves: health.role,
    joinDirGone: existsSync(join(w.updaterBundle, "join")),
  }).toEqual({ restart: [0, true], sameKeys: true, joined: [0, true], serves: "updater", joinDirGone: false });
});

test("a worker answering with a malformed CSR is refused by the master with one line; nothing is signed", async () => {
  const w = fleet.worker("w5");
  const token = await openJoin(w);
  const t = parseToken(token);
  const cert = await makeJoinCert(`decnet-join@${w.name}`, new Date(Date.now() + 3_600_000));
  // A worker that proves the token but sends a CSR that is not one.
  await using _fake = Bun.serve({
    hostname: w.address, port: 8766, tls: { cert: cert.certPem, key: cert.keyPem },
    async fetch(req) {
      const body = (await req.json()) as { ca: string; nonce: string };
      const nonce = newNonce();
      const csr = { agent: "-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgQ1NS\n-----END CERTIFICATE REQUEST-----\n", updater: "not a CSR" };
      const transcript = helloTranscript(t, { caPem: body.ca, masterNonce: body.nonce, workerNonce: nonce, tlsCert: cert.certPem, agentCsr: csr.agent, updaterCsr: csr.updater });
      return Response.json({ v: 1, tls_cert: cert.certPem, csr, nonce, proof: workerHelloProof(t, transcript) });
    },
  });
  const r = await fleet.cli(["swarm", "join", "w5"]);
  using db = new Database(join(home(), "swarm.db"), { readonly: true });
  expect({ code: r.code, oneLine: oneLine(r), says: /CSR/.test(r.stderr), signed: db.query<{ n: number }, []>("SELECT count(*) AS n FROM certs WHERE name = 'w5'").get()!.n }).toEqual({
    code: 1, oneLine: true, says: true, signed: 0,
  });
});

test("a master that died after the worker installed its certificates: `swarm join` finds the joined worker over mTLS and records the join", async () => {
  const w = fleet.worker("w6");
  const token = await openJoin(w);
  expect((await updaterJoin(w, token)).code).toBe(0);
  expect((await fleet.cli(["swarm", "join", "w6"])).code).toBe(0);
  // The registry as a master killed between the worker's answer and its own record leaves it.
  {
    using db = new Database(join(home(), "swarm.db"));
    db.run("UPDATE joins SET state = 'signed' WHERE host = 'w6'");
    db.run("DELETE FROM hosts WHERE name = 'w6'");
  }
  const r = await fleet.cli(["swarm", "join", "w6"]);
  const list = JSON.parse((await fleet.cli(["swarm", "list", "--json"])).stdout) as Array<{ name: string }>;
  expect({ code: r.code, recovered: r.stdout.includes("its confirmation had not reached this master"), listed: list.some((h) => h.name === "w6"), again: (await fleet.cli(["swarm", "join", "w6"])).code }).toEqual({
    code: 0, recovered: true, listed: true, again: 1,
  });
});
