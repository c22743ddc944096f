/**
 * Who may call whom, against the compiled binary's agent and updater: only the
 * master identity gets in; no certificate, another CA, and any worker's
 * certificate (agent or updater) are refused in the handshake.
 */
import { beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { runCli, binaries } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";
import { bundlePaths } from "../../src/lib/paths.ts";
import { readBundle, type Bundle } from "../../src/lib/tls.ts";

const fleet = useFleet({ workers: 2 });
let otherCa: Bundle;

beforeAll(async () => {
  // A whole second decnet installation: its own CA and master.
  const otherHome = join(fleet.root, "other-home");
  const r = await runCli((await binaries()).bin, ["swarm", "list"], { DECNET_HOME: otherHome });
  expect(r.code).toBe(0);
  otherCa = readBundle(bundlePaths(join(otherHome, "ca", "master"), "worker"), "");
  await fleet.startAgent(fleet.worker("w1"));
  await fleet.startUpdater(fleet.worker("w1"));
}, 180_000);

async function outcome(role: "agent" | "updater", as: Bundle | null): Promise<string> {
  const w1 = fleet.worker("w1");
  const port = role === "agent" ? 8765 : 8766;
  let seenCn: string | undefined;
  try {
    const res = await fetch(`https://${w1.address}:${port}/health`, {
      tls: {
        ca: fleet.master().ca,
        ...(as ? { cert: as.cert, key: as.key } : {}),
        checkServerIdentity: (_h: string, cert: { subject?: { CN?: string } }) => { seenCn = cert.subject?.CN; return undefined; },
      },
      signal: AbortSignal.timeout(5000),
    } as RequestInit);
    return `${res.status} from CN=${seenCn}`;
  } catch {
    return "refused";
  }
}

test("only the master identity may call a worker's agent and updater; worker certificates cannot call peers", async () => {
  const w2 = fleet.worker("w2");
  const w2agent = readBundle(bundlePaths(w2.agentBundle, "worker"), "");
  const w2updater = readBundle(bundlePaths(w2.updaterBundle, "updater"), "");
  const callers = { master: fleet.master(), none: null, "other CA": otherCa, "w2 agent cert": w2agent, "w2 updater cert": w2updater };
  const matrix: Record<string, Record<string, string>> = {};
  for (const role of ["agent", "updater"] as const) {
    matrix[role] = {};
    for (const [name, b] of Object.entries(callers)) matrix[role]![name] = await outcome(role, b);
  }
  expect(matrix).toEqual({
    agent: { master: "200 from CN=w1", none: "refused", "other CA": "refused", "w2 agent cert": "refused", "w2 updater cert": "refused" },
    updater: { master: "200 from CN=updater@w1", none: "refused", "other CA": "refused", "w2 agent cert": "refused", "w2 updater cert": "refused" },
  });
});

test("the master refuses a server whose CN is not the one it called", async () => {
  const w1 = fleet.worker("w1");
  const { call } = await import("../../src/client/http.ts");
  const { agentApi } = await import("../../src/protocol/agent.ts");
  // Calling w1's agent port while expecting w2: the CN check must fail.
  const err = await call({ host: "w2", address: w1.address, port: 8765, role: "agent" }, agentApi.health, { timeoutMs: 5000, bundle: fleet.master() }).catch((e) => e);
  expect({ name: err.name, code: err.code }).toEqual({ name: "RemoteError", code: "identity" });
});

test("TLS 1.2 offers AEAD suites only (no CBC, no SHA-1 MACs); TLS 1.3 works", async () => {
  const w1 = fleet.worker("w1");
  const master = fleet.master();
  const dir = join(fleet.root, "openssl");
  const { mkdirSync, writeFileSync } = await import("node:fs");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "m.crt"), master.cert);
  writeFileSync(join(dir, "m.key"), master.key, { mode: 0o600 });
  /** The cipher `openssl s_client` negotiated offering only `cipher` (TLS 1.2), or "refused". */
  const negotiate = async (port: number, args: string[]) => {
    const p = Bun.spawn(["openssl", "s_client", "-connect", `${w1.address}:${port}`, "-cert", join(dir, "m.crt"), "-key", join(dir, "m.key"), ...args], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    p.stdin.end();
    const out = await new Response(p.stdout).text();
    await p.exited;
    return /Cipher is (\S+)/.exec(out)?.[1] === "(NONE)" ? "refused" : (/Cipher is (\S+)/.exec(out)?.[1] ?? "refused");
  };
  const cbc = ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA384"];
  const result: Record<string, Record<string, string>> = {};
  for (const port of [8765, 8766]) {
    result[port] = {};
    for (const c of [...cbc, "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"]) result[port]![c] = await negotiate(port, ["-tls1_2", "-cipher", c]);
    result[port]!.tls13 = await negotiate(port, ["-tls1_3"]);
  }
  const want = { ...Object.fromEntries(cbc.map((c) => [c, "refused"])), "ECDHE-ECDSA-AES128-GCM-SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305", tls13: "TLS_AES_256_GCM_SHA384" };
  expect(result).toEqual({ 8765: want, 8766: want });
});
