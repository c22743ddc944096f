/**
 * The join exchange end to end in one process, over real TLS on 127.0.0.1:
 * the worker's join-only routes behind Bun.serve, the master's completeJoin,
 * and a man in the middle that relays, splices keys or swaps certificates.
 */
import { expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { issue, loadOrCreateCa } from "../../src/core/ca.ts";
import { completeJoin, openJoin, tokenOf } from "../../src/core/join.ts";
import { IdentityStore } from "../../src/core/registry-identity.ts";
import { installJoined, isJoined, type JoinMaterial, loadOrMakeJoinMaterial, workerToken } from "../../src/daemons/join/material.ts";
import { joinRoutes } from "../../src/daemons/join/routes.ts";
import { createApp } from "../../src/daemons/server.ts";
import { createLogger } from "../../src/lib/log.ts";
import { homePaths } from "../../src/lib/paths.ts";
import { makeJoinCert, makeKeyAndCsr } from "../../src/lib/worker-keys.ts";
import { formatToken, type JoinToken, parseToken } from "../../src/protocol/join-token.ts";
import { masterHelloProof } from "../../src/protocol/join.ts";

const log = createLogger("test");
log.error = Object.assign(() => {}, { raw: () => {} });

const HOST = "edge-1";
const SANS = ["127.0.0.1", "edge-1.example.net"];

/** Everything on disk in `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? filesUnder(join(dir, d.name)) : [join(dir, d.name)]));
}

interface Worker extends AsyncDisposable {
  port: number;
  material: JoinMaterial;
  agentDir: string;
  updaterDir: string;
  joined: string[];
  logs: string[];
}

/** A joining worker as `decnet updater --join TOKEN` would run it: join routes only, a self-signed listener. */
async function startWorker(root: string, token: string, o: { now?: () => Date; name?: string; crashAfterAgent?: boolean } = {}): Promise<Worker> {
  const t = parseToken(token);
  const base = join(root, o.name ?? "worker");
  const agentDir = join(base, "agent");
  const updaterDir = join(base, "updater");
  const material = await loadOrMakeJoinMaterial(updaterDir, t);
  const joined: string[] = [];
  const logs: string[] = [];
  const app = createApp(joinRoutes({
    log: { warn: (m: string) => logs.push(m), info: (m: string) => logs.push(m) } as never,
    token: t, material, now: o.now ?? (() => new Date()),
    install: (b) => {
      if (o.crashAfterAgent) {
        // Stands in for a kill -9 between the two bundles: the agent's files written, the updater's not.
        installJoined({ agentDir, updaterDir: join(base, "lost") }, material, b);
        throw new Error("killed");
      }
      installJoined({ agentDir, updaterDir }, material, b);
    },
    onJoined: (s) => joined.push(s.agent),
  }), log);
  const srv = Bun.serve({ hostname: "127.0.0.1", port: 0, tls: { cert: material.tls.certPem, key: material.tls.keyPem }, fetch: (req) => app(req) });
  return { port: srv.port!, material, agentDir, updaterDir, joined, logs, [Symbol.asyncDispose]: () => srv.stop(true) };
}

async function master() {
  const dir = mkdtempSync(join(tmpdir(), "decnet-join-"));
  const paths = homePaths(join(dir, "master"));
  const ca = await loadOrCreateCa(paths);
  const store = new IdentityStore(paths.db, "tester@master");
  return {
    dir, paths, ca, store,
    open: async (o: { ttlMs?: number; now?: Date } = {}) => (await openJoin(ca, store, { host: HOST, ...o })).token,
    join: (port: number, token: string, o: { now?: () => Date } = {}) => completeJoin("127.0.0.1", token, { ca, store, sans: SANS, port, ...o }),
    [Symbol.dispose]() {
      store[Symbol.dispose]();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A /join/hello body as the master sends it, with its proof of the token's secret (or a given one). */
const helloBody = (token: string, caPem: string, o: { host?: string; ca?: string; proof?: string } = {}) => {
  const nonce = "A".repeat(43);
  return { v: 1, host: o.host ?? HOST, ca: o.ca ?? caPem, nonce, proof: o.proof ?? masterHelloProof(parseToken(token), { caPem: o.ca ?? caPem, masterNonce: nonce }) };
};

/** A failure as one line: code and message. */
const failure = (p: Promise<unknown>) => p.then(() => "succeeded", (e: { code?: string; message: string }) => `${e.code}: ${e.message}`);

/** The same token with one field changed and its check digits recomputed: a deliberate forgery, not a typo. */
const forge = (token: string, change: Partial<JoinToken>) => formatToken({ ...parseToken(token), ...change });

/** A TLS-terminating relay between master and worker, with its own certificate; `rewrite` may change the hello answer. */
async function mitm(workerPort: number, rewrite?: (hello: Record<string, any>) => Promise<void>) {
  const own = await makeJoinCert("decnet-join@edge-1", new Date(Date.now() + 3_600_000));
  return Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    tls: { cert: own.certPem, key: own.keyPem },
    async fetch(req) {
      const path = new URL(req.url).pathname;
      const res = await fetch(`https://127.0.0.1:${workerPort}${path}`, { method: req.method, body: await req.text(), headers: { "content-type": "application/json" }, tls: { rejectUnauthorized: false } } as RequestInit);
      const body = await res.json() as Record<string, any>;
      if (path === "/join/hello" && res.ok) await rewrite?.(body);
      return Response.json(body, { status: res.status });
    },
  });
}

test("a join: the worker's keys stay on the worker, its certificates carry the registry's names, the token is spent", async () => {
  using m = await master();
  const token = await m.open();
  const rebuilt = await tokenOf(m.ca, m.store, HOST);
  await using w = await startWorker(m.dir, token);
  const r = await m.join(w.port, token);
  const agentCrt = new X509Certificate(readFileSync(join(w.agentDir, "worker.crt")));
  const updaterCrt = new X509Certificate(readFileSync(join(w.updaterDir, "updater.crt")));
  const workerKeys = [readFileSync(join(w.agentDir, "worker.key"), "utf8"), readFileSync(join(w.updaterDir, "updater.key"), "utf8")];
  const masterFiles = filesUnder(m.paths.home).map((f) => readFileSync(f, "latin1"));
  const record = (await m.store.join(HOST))!;
  expect({
    rebuilt: [rebuilt === token, await tokenOf(m.ca, m.store, HOST)],
    result: r,
    agent: { subject: agentCrt.subject, san: agentCrt.subjectAltName, serial: agentCrt.serialNumber.toLowerCase(), chains: agentCrt.verify(new X509Certificate(m.ca.pem).publicKey) },
    updater: { subject: updaterCrt.subject, serial: updaterCrt.serialNumber.toLowerCase() },
    keyModes: [join(w.agentDir, "worker.key"), join(w.updaterDir, "updater.key")].map((f) => (statSync(f).mode & 0o777).toString(8)),
    sameKeysAsOffered: workerKeys.join() === [w.material.agent.keyPem, w.material.updater.keyPem].join(),
    keyOnMaster: masterFiles.some((text) => workerKeys.some((k) => text.includes(k.split("\n")[1]!))),
    pendingGone: isJoined(w.updaterDir) && !readdirSync(w.updaterDir).includes("join"),
    record: { state: record.state, secret: record.secret },
    recorded: (await m.store.certs(HOST, ["agent", "updater"])).map((c) => c.serial).sort(),
    events: (await m.store.events(HOST)).map((e) => `${e.action} by ${e.operator}`),
    onJoined: w.joined,
    again: await failure(m.join(w.port, token)),
  }).toEqual({
    rebuilt: [true, null],
    result: { host: HOST, serials: { agent: expect.any(String), updater: expect.any(String) }, notAfter: expect.any(String) },
    agent: { subject: "CN=edge-1", san: "IP Address:127.0.0.1, DNS:edge-1.example.net", serial: r.serials.agent, chains: true },
    updater: { subject: "CN=updater@edge-1", serial: r.serials.updater },
    keyModes: ["600", "600"],
    sameKeysAsOffered: true,
    keyOnMaster: false,
    pendingGone: true,
    record: { state: "done", secret: null },
    recorded: [r.serials.agent, r.serials.updater].sort(),
    events: ["join-open by tester@master", "join by tester@master"],
    onJoined: [r.serials.agent],
    again: `token_used: the token for edge-1 was used already: edge-1 joined at ${record.updated_at}`,
  });
  // The worker itself refuses its token a second time.
  const hello = await fetch(`https://127.0.0.1:${w.port}/join/hello`, { method: "POST", body: JSON.stringify(helloBody(token, m.ca.pem)), tls: { rejectUnauthorized: false } } as RequestInit);
  expect({ status: hello.status, body: await hello.json() }).toEqual({ status: 409, body: { error: { code: "token_used", message: "this worker has joined as edge-1 already; its token cannot be used again" } } });
});

test("the joined certificates work: the master identity calls a server using the worker's new agent bundle", async () => {
  using m = await master();
  const token = await m.open();
  await using w = await startWorker(m.dir, token);
  await m.join(w.port, token);
  const me = await issue(m.ca, { role: "master", cn: "decnet-master" });
  const { clientTls } = await import("../../src/lib/tls.ts");
  const bundle = { cert: readFileSync(join(w.agentDir, "worker.crt"), "utf8"), key: readFileSync(join(w.agentDir, "worker.key"), "utf8"), ca: readFileSync(join(w.agentDir, "ca.crt"), "utf8") };
  await using agent = Bun.serve({ hostname: "127.0.0.1", port: 0, tls: { ...bundle, requestCert: true, rejectUnauthorized: true }, fetch: () => new Response("agent") });
  const res = await fetch(`https://127.0.0.1:${agent.port}/`, { tls: clientTls({ cert: me.certPem, key: me.keyPem, ca: m.ca.pem }, HOST) } as RequestInit);
  expect(await res.text()).toBe("agent");
});

test("a damaged or forged token, another CA, or an expired token is refused with one line, and nothing is signed", async () => {
  using m = await master();
  const token = await m.open();
  const typo = token.slice(0, 60) + (token[60] === "a" ? "b" : "a") + token.slice(61);
  await using otherSecret = await startWorker(m.dir, forge(token, { secret: "B".repeat(43) }), { name: "w-secret" });
  await using otherCa = await startWorker(m.dir, forge(token, { ca: "0".repeat(64) }), { name: "w-ca" });
  await using late = await startWorker(m.dir, token, { name: "w-late", now: () => new Date(Date.now() + 3_600_000) });
  const foreign = await loadOrCreateCa(homePaths(join(m.dir, "other-master")));
  const tokenOfOther = forge(token, { ca: foreign.sha256 });
  expect({
    typo: await failure(m.join(otherSecret.port, typo)),
    workerSecretDiffers: await failure(m.join(otherSecret.port, token)),
    workerPinsAnotherCa: await failure(m.join(otherCa.port, token)),
    tokenOfAnotherMaster: await failure(m.join(otherCa.port, tokenOfOther)),
    workerClockPastExpiry: await failure(m.join(late.port, token)),
    masterClockPastExpiry: await failure(m.join(late.port, token, { now: () => new Date(Date.now() + 3_600_000) })),
    signed: (await m.store.certs(HOST, ["agent", "updater"])).length,
    state: (await m.store.join(HOST))!.state,
    workerLog: otherCa.logs.map((l) => l.replace(/[0-9a-f]{16}…/g, "…")),
  }).toEqual({
    typo: "usage: join token is damaged (its check digits do not match): copy it again, whole",
    // The master proves its token first: the worker with another secret refuses it, and says so.
    workerSecretDiffers: "join_refused: the master's proof does not match this worker's token",
    workerPinsAnotherCa: expect.stringMatching(/^ca_mismatch: the master's CA \(sha256 [0-9a-f]{16}…\) is not the CA this worker's token names \(0{16}…\)$/),
    tokenOfAnotherMaster: expect.stringMatching(/^ca_mismatch: the token for edge-1 names another CA/),
    workerClockPastExpiry: expect.stringMatching(/^token_expired: this worker's join token expired at /),
    masterClockPastExpiry: expect.stringMatching(/^token_expired: the token for edge-1 expired at /),
    signed: 0,
    state: "pending",
    // The token of another master is refused by this master before any connection: one refusal logged.
    workerLog: ["POST /join/hello refused: ca_mismatch: the master's CA (sha256 …) is not the CA this worker's token names (…)"],
  });
  expect(() => parseToken(typo)).toThrow("join token is damaged");
});

test("a man in the middle cannot splice: relaying, swapping in its keys or its certificate all fail, and the real worker can still join", async () => {
  using m = await master();
  const token = await m.open();
  await using w = await startWorker(m.dir, token);
  const evilKeys = await Promise.all([makeKeyAndCsr(HOST), makeKeyAndCsr(`updater@${HOST}`)]);
  await using splice = await mitm(w.port, async (h) => {
    h.csr = { agent: evilKeys[0].csrPem, updater: evilKeys[1].csrPem };
  });
  await using swap = await mitm(w.port, async (h) => {
    h.tls_cert = (await makeJoinCert("decnet-join@edge-1", new Date(Date.now() + 3_600_000))).certPem;
  });
  const spliced = await failure(m.join(splice.port!, token));
  const swapped = await failure(m.join(swap.port!, token));
  const signedBeforeRelay = (await m.store.certs(HOST, ["agent", "updater"])).length;
  await using relay = await mitm(w.port);
  const relayed = await failure(m.join(relay.port!, token));
  const afterRelay = { joined: isJoined(w.updaterDir), state: (await m.store.join(HOST))!.state };
  // The relay's attempt bound the token to the real worker's keys: the real worker can finish, once.
  const direct = await m.join(w.port, token);
  expect({ spliced, swapped, signedBeforeRelay, relayed, afterRelay, direct: direct.host, joined: isJoined(w.updaterDir) }).toEqual({
    spliced: "join_refused: the worker at 127.0.0.1 did not prove the token",
    swapped: "join_refused: the worker at 127.0.0.1 did not prove the token",
    signedBeforeRelay: 0,
    relayed: `join_refused: the TLS certificate at 127.0.0.1:${relay.port} is not the one the worker proved in /join/hello`,
    afterRelay: { joined: false, state: "signed" },
    direct: HOST,
    joined: true,
  });
});

test("the token is single use: a second worker with the same token cannot join once the first one's keys were bound", async () => {
  using m = await master();
  const token = await m.open();
  await using first = await startWorker(m.dir, token, { name: "first" });
  await using relay = await mitm(first.port);
  await failure(m.join(relay.port!, token)); // binds the token to the first worker's keys, then fails at the pin
  await using second = await startWorker(m.dir, token, { name: "second" });
  expect(await failure(m.join(second.port, token))).toBe("token_used: the token for edge-1 was already spent on other keys");
});

test("the worker refuses a forged or replayed finish and bad input with clear 4xx answers", async () => {
  using m = await master();
  const token = await m.open();
  await using w = await startWorker(m.dir, token);
  const post = async (path: string, body: unknown) => {
    const r = await fetch(`https://127.0.0.1:${w.port}${path}`, { method: "POST", body: typeof body === "string" ? body : JSON.stringify(body), tls: { rejectUnauthorized: false } } as RequestInit);
    const b = (await r.json()) as { error?: { code: string } };
    return `${r.status} ${b.error?.code ?? "ok"}`;
  };
  const hello = await (await fetch(`https://127.0.0.1:${w.port}/join/hello`, { method: "POST", body: JSON.stringify(helloBody(token, m.ca.pem)), tls: { rejectUnauthorized: false } } as RequestInit)).json() as { nonce: string };
  const forged = { v: 1, nonce: hello.nonce, certs: { agent: m.ca.pem, updater: m.ca.pem }, trust: null, proof: "0".repeat(64) };
  expect({
    forged: await post("/join/finish", forged),
    replayed: await post("/join/finish", forged),
    wrongHost: await post("/join/hello", helloBody(token, m.ca.pem, { host: "edge-2" })),
    badCa: await post("/join/hello", helloBody(token, m.ca.pem, { ca: "not a certificate" })),
    noMasterProof: await post("/join/hello", helloBody(token, m.ca.pem, { proof: "0".repeat(64) })),
    extraField: await post("/join/hello", { ...helloBody(token, m.ca.pem), sans: ["evil"] }),
    notJson: await post("/join/hello", "{"),
    elsewhere: await post("/update", {}),
    joined: isJoined(w.updaterDir),
  }).toEqual({
    forged: "403 join_refused",
    replayed: "403 join_refused",
    wrongHost: "403 join_refused",
    badCa: "400 bad_certificate",
    noMasterProof: "403 join_refused",
    extraField: "400 bad_request",
    notJson: "400 bad_request",
    elsewhere: "404 not_found",
    joined: false,
  });
});

test("a restarted worker offers the same keys for the same token, new ones for a new token", async () => {
  using m = await master();
  const dir = join(m.dir, "updater");
  const t1 = parseToken(await m.open());
  const a = await loadOrMakeJoinMaterial(dir, t1);
  const b = await loadOrMakeJoinMaterial(dir, t1);
  const c = await loadOrMakeJoinMaterial(dir, parseToken(await m.open()));
  const file = join(dir, "join", "material.json");
  expect({
    same: [a.agent.spki, a.updater.spki, a.tls.sha256].join() === [b.agent.spki, b.updater.spki, b.tls.sha256].join(),
    fresh: a.agent.spki !== c.agent.spki && a.updater.spki !== c.updater.spki,
    mode: (statSync(file).mode & 0o777).toString(8),
    secretNotStored: !readFileSync(file, "utf8").includes(t1.secret),
    joined: isJoined(dir),
  }).toEqual({ same: true, fresh: true, mode: "600", secretNotStored: true, joined: false });
});

test("a worker that dies while installing comes back with the same keys, and the master's retry completes the join", async () => {
  using m = await master();
  const token = await m.open();
  const crashed = await failure((async () => {
    await using w = await startWorker(m.dir, token, { crashAfterAgent: true });
    return await m.join(w.port, token);
  })());
  await using again = await startWorker(m.dir, token);
  const stillJoining = !isJoined(again.updaterDir);
  const r = await m.join(again.port, token);
  expect({ crashed, stillJoining, joined: isJoined(again.updaterDir), state: (await m.store.join(HOST))!.state, host: r.host }).toEqual({
    crashed: "internal: internal error",
    stillJoining: true,
    joined: true,
    state: "done",
    host: HOST,
  });
});

test("at start, the worker refuses a damaged or expired token with one line", async () => {
  using m = await master();
  const token = await m.open({ ttlMs: 60_000 });
  const line = (f: () => unknown) => {
    try {
      f();
      return "accepted";
    } catch (e) {
      return `${(e as { code: string }).code}: ${(e as Error).message}`;
    }
  };
  expect({
    ok: line(() => workerToken(token)),
    damaged: line(() => workerToken(token.replace("edge-1", "edge-2"))),
    expired: line(() => workerToken(token, new Date(Date.now() + 120_000))),
  }).toEqual({
    ok: "accepted",
    damaged: "usage: join token is damaged (its check digits do not match): copy it again, whole",
    expired: expect.stringMatching(/^token_expired: join token for edge-1 expired at /),
  });
});

test("the join and identity route tables are sorted and serve exactly their protocol tables", async () => {
  const { identityRoutes } = await import("../../src/daemons/identity/routes.ts");
  const { identityApi } = await import("../../src/protocol/identity.ts");
  const { joinApi } = await import("../../src/protocol/join.ts");
  const { routeKey } = await import("../../src/protocol/route.ts");
  const keys = (routes: { spec: Parameters<typeof routeKey>[0] }[]) => routes.map((r) => routeKey(r.spec));
  const specs = (api: Record<string, Parameters<typeof routeKey>[0]>) => Object.values(api).map(routeKey);
  const tables = { join: keys(joinRoutes({} as never)), identity: keys(identityRoutes({ agentDir: "/a", updaterDir: "/u", now: () => new Date() })) };
  for (const k of Object.values(tables)) expect(k).toEqual([...k].sort());
  expect(tables).toEqual({ join: specs(joinApi), identity: specs(identityApi) });
});

