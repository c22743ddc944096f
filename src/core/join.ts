/**
 * The master's end of the join: open a join (a single-use token that expires)
 * and complete it against the worker — check its proof, sign its CSRs with
 * the registry's names, deliver them to the TLS certificate it proved, and
 * record the join once the worker confirms.
 */
import { DecnetError, RemoteError } from "../lib/errors.ts";
import { firstPemBlock } from "../lib/x509.ts";
import { DEFAULT_TOKEN_TTL_MS, formatToken, type JoinToken, newSecret, parseToken, secretsEqual, TokenError, tokenExpired } from "../protocol/join-token.ts";
import { finishTranscript, helloTranscript, JOIN_VERSION, masterFinishProof, masterHelloProof, newNonce, proofsEqual, workerDoneProof, workerHelloProof } from "../protocol/join.ts";
import { joinFinish, joinHello } from "../client/join.ts";
import type { Ca } from "./ca.ts";
import { csrPublicKey, signCsr } from "./csr-sign.ts";
import type { IdentityStore } from "./registry-identity.ts";

/** A token lives at most a day: it is a bearer secret on a terminal. */
export const MAX_TOKEN_TTL_MS = 24 * 3_600_000;
/** Shorter tokens are of no use to a person, but cost nothing (tests make them lapse). */
export const MIN_TOKEN_TTL_MS = 2_000;

export interface OpenJoinOptions {
  host: string;
  /** Where the master will reach the worker, and its certificates' SANs (kept for `swarm join H`). */
  address?: string;
  sans?: string[];
  ttlMs?: number;
  now?: Date;
}

/** Records a pending join for `host` (replacing any earlier token) and returns its token line. */
export async function openJoin(ca: Ca, store: IdentityStore, o: OpenJoinOptions): Promise<{ token: string; expiresAt: string }> {
  const ttl = o.ttlMs ?? DEFAULT_TOKEN_TTL_MS;
  if (!(ttl >= MIN_TOKEN_TTL_MS && ttl <= MAX_TOKEN_TTL_MS)) throw new DecnetError("usage", "--ttl must be between 2s and 24h", { exitCode: 2 });
  const now = o.now ?? new Date();
  const t: JoinToken = { host: o.host, ca: ca.sha256, secret: newSecret(), expires: Math.floor((now.getTime() + ttl) / 1000) };
  const expiresAt = new Date(t.expires * 1000);
  await store.tx(async () => {
    await store.openJoin(o.host, t.secret, expiresAt, now, { address: o.address, sans: o.sans });
    await store.event("join-open", o.host, JSON.stringify({ expires_at: expiresAt.toISOString() }), now);
  });
  return { token: formatToken(t), expiresAt: expiresAt.toISOString() };
}

/** The open token for `host`, rebuilt from the registry (for `swarm join H`); null once spent or never opened. */
export async function tokenOf(ca: Ca, store: IdentityStore, host: string): Promise<string | null> {
  const j = await store.join(host);
  if (!j?.secret || j.state === "done") return null;
  return formatToken({ host, ca: ca.sha256, secret: j.secret, expires: Math.floor(Date.parse(j.expires_at) / 1000) });
}

export interface CompleteJoinOptions {
  ca: Ca;
  store: IdentityStore;
  /** The registry's SANs for the host: what its certificates will carry. */
  sans: string[];
  /** The updater port the worker's join listener is on. */
  port: number;
  /** The trust document to hand over, exactly as trust.json holds it (DESIGN §11). */
  trust?: string | null;
  timeoutMs?: number;
  now?: () => Date;
  /** The worker confirmed: runs before the token is marked spent (the caller records the host). */
  onConfirmed?(r: JoinResult): void | Promise<unknown>;
}

export interface JoinResult {
  host: string;
  serials: { agent: string; updater: string };
  notAfter: string;
}

const refused = (host: string, message: string, hint?: string) => new RemoteError(host, "join_refused", message, 0, undefined, hint);

/** Checks the token against the registry's open join; returns the parsed token. */
async function admit(token: string, o: CompleteJoinOptions): Promise<JoinToken> {
  let t: JoinToken;
  try {
    t = parseToken(token);
  } catch (e) {
    if (e instanceof TokenError) throw new DecnetError("usage", e.message, { exitCode: 2 });
    throw e;
  }
  const now = o.now?.() ?? new Date();
  if (t.ca !== o.ca.sha256) throw new DecnetError("ca_mismatch", `the token for ${t.host} names another CA (sha256 ${t.ca.slice(0, 16)}…, this master's is ${o.ca.sha256.slice(0, 16)}…)`);
  const j = await o.store.join(t.host);
  if (!j) throw new DecnetError("join_refused", `no join is open for ${t.host}`, { hint: `open one with \`decnet swarm enroll --host ${t.host} --address ADDR --join\`` });
  if (j.state === "done") throw new DecnetError("token_used", `the token for ${t.host} was used already: ${t.host} joined at ${j.updated_at}`);
  if (!j.secret || !secretsEqual(j.secret, t.secret)) {
    throw new DecnetError("join_refused", `this is not the current token for ${t.host}`, { hint: "a newer token was issued for it; use that one" });
  }
  if (tokenExpired(t, now)) throw new DecnetError("token_expired", `the token for ${t.host} expired at ${new Date(t.expires * 1000).toISOString()}`, { hint: "open a new join for it" });
  return t;
}

/**
 * Completes the join of the worker listening at `address` with `token`.
 * Single use: once the worker confirms, the token is spent; until then a
 * retry is allowed only for the same worker keys (an updater restarted
 * mid-join offers the keys it offered before).
 */
export async function completeJoin(address: string, token: string, o: CompleteJoinOptions): Promise<JoinResult> {
  const t = await admit(token, o);
  const now = () => o.now?.() ?? new Date();
  const e = { host: t.host, address, port: o.port, timeoutMs: o.timeoutMs ?? 10_000 };
  const masterNonce = newNonce();
  const hello = await joinHello(e, { v: JOIN_VERSION, host: t.host, ca: o.ca.pem, nonce: masterNonce, proof: masterHelloProof(t, { caPem: o.ca.pem, masterNonce }) });
  const transcript = helloTranscript(t, { caPem: o.ca.pem, masterNonce, workerNonce: hello.nonce, tlsCert: hello.tls_cert, agentCsr: hello.csr.agent, updaterCsr: hello.csr.updater });
  if (!proofsEqual(hello.proof, workerHelloProof(t, transcript))) {
    throw refused(t.host, `the worker at ${address} did not prove the token`, "it was started with another token, or something between the master and the worker changed the exchange");
  }
  const [agentKey, updaterKey] = await Promise.all([csrPublicKey(hello.csr.agent, "agent CSR"), csrPublicKey(hello.csr.updater, "updater CSR")]);
  if (agentKey.spki === updaterKey.spki) throw refused(t.host, "the worker's agent and updater CSRs share one key");
  const keys = `${agentKey.spki},${updaterKey.spki}`;
  await o.store.tx(async () => {
    const j = await o.store.join(t.host);
    if (j?.state === "done") throw new DecnetError("token_used", `the token for ${t.host} was used already: ${t.host} joined at ${j.updated_at}`);
    if (j?.state === "signed" && j.bound_keys !== keys) {
      throw new DecnetError("token_used", `the token for ${t.host} was already spent on other keys`, { hint: "a second worker is using this token, or the first one lost its keys; open a new join" });
    }
    await o.store.bindJoin(t.host, keys, now());
  });
  const [agent, updater] = [
    await signCsr(o.ca, hello.csr.agent, { role: "agent", host: t.host, sans: o.sans, now: now() }),
    await signCsr(o.ca, hello.csr.updater, { role: "updater", host: t.host, sans: o.sans, now: now() }),
  ];
  // Recorded before they leave, so every certificate that exists can be revoked.
  await o.store.tx(async () => {
    await o.store.recordIssued(agent, t.host, now());
    await o.store.recordIssued(updater, t.host, now());
  });
  const trust = o.trust ?? null;
  const fin = finishTranscript(transcript, { agentCert: agent.certPem, updaterCert: updater.certPem, trust });
  const pinned = new Uint8Array(await firstPemBlock(hello.tls_cert, "worker's join certificate"));
  const done = await joinFinish(e, hello.tls_cert, pinned, {
    v: JOIN_VERSION, nonce: hello.nonce, certs: { agent: agent.certPem, updater: updater.certPem }, trust, proof: masterFinishProof(t, fin),
  });
  if (!proofsEqual(done.proof, workerDoneProof(t, fin)) || done.serials.agent !== agent.serial || done.serials.updater !== updater.serial) {
    throw refused(t.host, "the worker's confirmation does not match what was sent");
  }
  const result = { host: t.host, serials: done.serials, notAfter: agent.notAfter };
  await o.onConfirmed?.(result);
  await o.store.tx(async () => {
    await o.store.finishJoin(t.host, now());
    await o.store.event("join", t.host, JSON.stringify({ address, serials: done.serials }), now());
  });
  return result;
}
