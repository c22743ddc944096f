/**
 * Joining a worker without copying files (DESIGN §14): `swarm enroll --join`
 * opens a join (a single-use token; the host enters the registry once it has
 * joined) and waits for the worker; `swarm join H` completes an open join.
 */
import { existsSync, readFileSync } from "node:fs";
import { updaterHealth } from "../../client/updater.ts";
import { DEFAULT_AGENT_PORT, DEFAULT_UPDATER_PORT } from "../../lib/config.ts";
import { DecnetError, RemoteError, usageError } from "../../lib/errors.ts";
import { homePaths } from "../../lib/paths.ts";
import { timeouts } from "../../lib/timeouts.ts";
import { ensureMasterIdentity } from "../identity.ts";
import { type JoinResult } from "../join.ts";
import { duplicateHost, Registry } from "../registry.ts";
import { validateEnroll } from "./enroll.ts";

/** Transport failures a wait retries: the worker's updater is not (yet) serving the join. */
const NOT_THERE_YET = new Set(["unreachable", "timeout", "handshake"]);
/** A waiting master tries again this often. */
const POLL_MS = 1_000;

/** `30m`, `2h`, `45s`: a whole number and a unit. */
export function parseTtl(text: string): number {
  const m = /^([1-9][0-9]{0,6})(s|m|h)$/.exec(text.trim());
  if (!m) throw usageError(`--ttl ${JSON.stringify(text)} is not a duration`, "write it as a whole number of s, m or h, e.g. 30m");
  return Number(m[1]) * { s: 1_000, m: 60_000, h: 3_600_000 }[m[2] as "s" | "m" | "h"];
}

export interface OpenedJoin {
  host: string;
  address: string;
  sans: string[];
  /** The token line, beginning `decnet-join:`. */
  token: string;
  expiresAt: string;
  port: number;
}

/** Opens a join for a host not enrolled yet (a pending join for it is replaced: its old token stops working). */
export async function openHostJoin(o: { host: string; address?: string; sans?: string[]; ttl?: string; now?: Date; join: boolean; updater?: boolean; updaterOnly?: boolean; outDir?: string }): Promise<OpenedJoin> {
  if (!o.join) throw usageError("--ttl and --no-wait go with --join");
  validateEnroll({ ...o, now: undefined });
  const ttlMs = o.ttl === undefined ? undefined : parseTtl(o.ttl);
  {
    using reg = new Registry();
    if (await reg.host(o.host)) {
      const e = duplicateHost(o.host);
      throw new DecnetError("failed", `${e.message}: a host joins once`, { hint: `to give it new certificates: \`decnet swarm renew --host ${o.host}\`; to replace it: \`decnet swarm decommission --host ${o.host}\` and join it under another name` });
    }
  }
  const { loadOrCreateCa } = await import("../ca.ts");
  const { IdentityStore } = await import("../registry-identity.ts");
  const { openJoin } = await import("../join.ts");
  const home = homePaths();
  const ca = await loadOrCreateCa(home);
  using store = new IdentityStore(home.db);
  const address = o.address!;
  const sans = [...new Set([address, ...(o.sans ?? [])])];
  const r = await openJoin(ca, store, { host: o.host, address, sans, ttlMs, now: o.now });
  return { host: o.host, address, sans, token: r.token, expiresAt: r.expiresAt, port: DEFAULT_UPDATER_PORT };
}

export interface CompleteOptions {
  /** Keep trying until the token expires while nothing answers the join at the worker's address. */
  wait: boolean;
  /** Told once when the worker is not there yet and the master waits. */
  onWaiting?: (why: string) => void;
}

export interface Joined extends JoinResult {
  address: string;
  sans: string[];
  /** The worker had installed its certificates, but its confirmation never reached the master: found over mTLS. */
  recovered: boolean;
}

/** What to do about a worker's refusal (its error body carries no hint). */
const REFUSAL_HINT: Record<string, string> = {
  join_refused: "the worker holds another token for this host: start it with the newest one",
  ca_mismatch: "the worker's token is not this master's (or was altered): start it with the token this master printed",
  token_expired: "open a new join for it",
};

/** A refusal by the worker, said as one: the message is the worker's own words. */
function workerSaid(e: RemoteError, address: string): RemoteError {
  if (e.status === 0) return e;
  return new RemoteError(e.host, e.code, `the worker at ${address} refused the join: ${e.message}`, e.status, e.detail, e.hint ?? REFUSAL_HINT[e.code]);
}

/** Completes the open join of `host` against its worker (DESIGN §14); records the host once the worker confirms. */
export async function completeHostJoin(host: string, o: CompleteOptions): Promise<Joined> {
  const { loadOrCreateCa } = await import("../ca.ts");
  const { IdentityStore } = await import("../registry-identity.ts");
  const { completeJoin, tokenOf } = await import("../join.ts");
  const home = homePaths();
  using store = new IdentityStore(home.db);
  const j = await store.join(host);
  if (!j) throw usageError(`no join is open for ${host}`, `open one with \`decnet swarm enroll --host ${host} --address ADDR --join\``);
  if (j.state === "done") throw new DecnetError("token_used", `the token for ${host} was used already: ${host} joined at ${j.updated_at}`);
  if (!j.address) throw new DecnetError("failed", `the open join for ${host} has no address on record`, { hint: `open it again: \`decnet swarm enroll --host ${host} --address ADDR --join\`` });
  const address = j.address;
  const sans = j.sans ? (JSON.parse(j.sans) as string[]) : [address];
  using reg = new Registry();
  if (await reg.host(host) && j.state !== "signed") throw duplicateHost(host);
  const ca = await loadOrCreateCa(home);
  const token = (await tokenOf(ca, store, host))!;
  const trust = existsSync(home.trust.doc) ? readFileSync(home.trust.doc, "utf8") : null;
  const record = async (r: JoinResult) => {
    if (!await reg.host(host)) await reg.addHost({ name: host, address, sans, agent_port: DEFAULT_AGENT_PORT, updater_port: DEFAULT_UPDATER_PORT, enrolled_at: new Date().toISOString(), has_updater: true });
    return r;
  };
  await ensureMasterIdentity(home);
  const deadline = Date.parse(j.expires_at);
  let told = false;
  for (;;) {
    // Signed before: the worker may have installed its certificates and lost the answer. If it serves them, the join is done.
    if ((await store.join(host))?.state === "signed") {
      const h = await updaterHealth({ host, address, port: DEFAULT_UPDATER_PORT }).catch(() => null);
      if (h) {
        const serials = { agent: (await store.certs(host, ["agent"]))[0]?.serial ?? "", updater: (await store.certs(host, ["updater"]))[0]?.serial ?? "" };
        const r = await record({ host, serials, notAfter: (await store.certs(host, ["agent"]))[0]?.not_after ?? "" });
        await store.tx(async () => {
          await store.finishJoin(host);
          await store.event("join", host, JSON.stringify({ address, serials, confirmed_by: "mTLS /health" }));
        });
        return { ...r, address, sans, recovered: true };
      }
    }
    try {
      const r = await completeJoin(address, token, { ca, store, sans, port: DEFAULT_UPDATER_PORT, trust, timeoutMs: timeouts.request(), onConfirmed: record });
      return { ...r, address, sans, recovered: false };
    } catch (e) {
      if (e instanceof DecnetError && e.code === "bad_certificate") throw new RemoteError(host, e.code, `the worker at ${address} sent something that is not what a join takes: ${e.message}`);
      if (!(e instanceof RemoteError)) throw e;
      if (!NOT_THERE_YET.has(e.code)) throw workerSaid(e, address);
      if (!o.wait) {
        throw new RemoteError(host, e.code, `no updater waiting to join at ${address}:${DEFAULT_UPDATER_PORT} (${e.message})`, 0, undefined,
          `start it there with \`decnet updater --join TOKEN\` (or install.sh --join TOKEN), then run this again, or add --wait`);
      }
      if (Date.now() + POLL_MS >= deadline) {
        throw new DecnetError("token_expired", `the token for ${host} expired at ${j.expires_at} while waiting for its worker at ${address}:${DEFAULT_UPDATER_PORT} (last: ${e.message})`, { hint: "open a new join for it" });
      }
      if (!told) o.onWaiting?.(e.message);
      told = true;
      await Bun.sleep(POLL_MS);
    }
  }
}
