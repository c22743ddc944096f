/**
 * A joining worker's material on disk: its agent and updater keys with their
 * CSRs and the join listener's self-signed certificate, made once per token
 * and kept until the join completes; then the bundles it installs.
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { createHash } from "node:crypto";
import { z } from "zod";
import { writeFileAtomic } from "../../lib/atomic.ts";
import { bundlePaths, ensurePrivateDir, joinPaths } from "../../lib/paths.ts";
import { type KeyAndCsr, makeJoinCert, makeKeyAndCsr, type SelfSigned } from "../../lib/worker-keys.ts";
import { DecnetError } from "../../lib/errors.ts";
import { type JoinToken, parseToken, TokenError, tokenExpired } from "../../protocol/join-token.ts";

export interface JoinMaterial {
  agent: KeyAndCsr;
  updater: KeyAndCsr;
  tls: SelfSigned;
}

const KeyAndCsrShape = z.object({ keyPem: z.string(), csrPem: z.string(), spki: z.string() });
const Stored = z.object({
  token: z.string(),
  agent: KeyAndCsrShape,
  updater: KeyAndCsrShape,
  tls: z.object({ certPem: z.string(), keyPem: z.string(), sha256: z.string() }),
});

/** `decnet updater --join TOKEN` at start: a damaged or expired token is one line, and nothing is made. */
export function workerToken(text: string, now = new Date()): JoinToken {
  let t: JoinToken;
  try {
    t = parseToken(text);
  } catch (e) {
    if (e instanceof TokenError) throw new DecnetError("usage", e.message, { exitCode: 2 });
    throw e;
  }
  if (tokenExpired(t, now)) {
    throw new DecnetError("token_expired", `join token for ${t.host} expired at ${new Date(t.expires * 1000).toISOString()}`, { hint: `open a new join on the master (\`decnet swarm enroll --host ${t.host} … --join\`)` });
  }
  return t;
}

/** Names a token without keeping its secret on disk. */
function tokenId(t: JoinToken): string {
  return createHash("sha256").update(`${t.host}:${t.ca}:${t.secret}:${t.expires}`).digest("hex");
}

/**
 * The material for `token`: the stored one when it was made for the same
 * token (a restart mid-join offers the same keys, so the master can finish
 * the join it began), else new keys — the private keys never leave here.
 */
export async function loadOrMakeJoinMaterial(updaterDir: string, token: JoinToken, now = new Date()): Promise<JoinMaterial> {
  const p = joinPaths(updaterDir);
  const id = tokenId(token);
  if (existsSync(p.material)) {
    try {
      const s = Stored.parse(JSON.parse(readFileSync(p.material, "utf8")));
      if (s.token === id) return { agent: s.agent, updater: s.updater, tls: s.tls };
    } catch {} // damaged: make new material
  }
  const [agent, updater, tls] = await Promise.all([
    makeKeyAndCsr(token.host),
    makeKeyAndCsr(`updater@${token.host}`),
    makeJoinCert(`decnet-join@${token.host}`, new Date(token.expires * 1000 + 60_000), now),
  ]);
  ensurePrivateDir(p.dir);
  writeFileAtomic(p.material, JSON.stringify({ token: id, agent, updater, tls }), 0o600);
  return { agent, updater, tls };
}

export interface JoinedBundles {
  ca: string;
  agentCert: string;
  updaterCert: string;
  trust: string | null;
}

export interface InstallDirs {
  agentDir: string;
  updaterDir: string;
  /** Where the updater keeps its trust document; null keeps none. */
  trustFile?: string | null;
}

/**
 * Writes both bundles from the join. updater.crt is written last: an updater
 * restarted part-way finds no updater.crt, stays in join mode with the same
 * keys, and the master can repeat the finish.
 */
export function installJoined(d: InstallDirs, m: JoinMaterial, b: JoinedBundles): void {
  const agent = bundlePaths(d.agentDir, "worker");
  const updater = bundlePaths(d.updaterDir, "updater");
  ensurePrivateDir(agent.dir);
  ensurePrivateDir(updater.dir);
  writeFileAtomic(agent.key, m.agent.keyPem, 0o600);
  writeFileAtomic(agent.ca, b.ca, 0o644);
  writeFileAtomic(agent.crt, b.agentCert, 0o644);
  writeFileAtomic(updater.key, m.updater.keyPem, 0o600);
  writeFileAtomic(updater.ca, b.ca, 0o644);
  if (b.trust !== null && d.trustFile) writeFileAtomic(d.trustFile, b.trust, 0o644);
  writeFileAtomic(updater.crt, b.updaterCert, 0o644);
  rmSync(joinPaths(d.updaterDir).dir, { recursive: true, force: true });
}

/** Joined once the updater's certificate is in place (installJoined writes it last). */
export function isJoined(updaterDir: string): boolean {
  return existsSync(bundlePaths(updaterDir, "updater").crt);
}
