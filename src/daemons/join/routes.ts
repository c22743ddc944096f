/**
 * The worker's end of the join: the only routes an updater started with
 * `--join TOKEN` serves until it has joined. /join/hello pins the master's CA
 * by the token's hash and proves the secret over this worker's TLS
 * certificate and CSRs; /join/finish takes the certificates only with the
 * master's proof over the same hello.
 */
import { type Route, route, type Routes } from "../server.ts";
import { DecnetError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { certSha256, checkIssued } from "../../lib/worker-keys.ts";
import { type JoinToken, tokenExpired } from "../../protocol/join-token.ts";
import {
  type FinishResponse, finishTranscript, type HelloResponse, helloTranscript, joinApi,
  JOIN_VERSION, masterFinishProof, newNonce, proofsEqual, workerDoneProof, workerHelloProof,
} from "../../protocol/join.ts";
import type { JoinedBundles, JoinMaterial } from "./material.ts";

/** A hello's nonce stays usable this long, and only this many at once (oldest dropped). */
export const HELLO_TTL_MS = 120_000;
export const MAX_OPEN_HELLOS = 16;

export interface JoinDeps {
  token: JoinToken;
  material: JoinMaterial;
  now: () => Date;
  /** Writes the bundles (material.ts installJoined, with the daemon's dirs). */
  install(b: JoinedBundles): void | Promise<void>;
  /** After a successful finish has been answered: the daemon leaves join mode. */
  onJoined?(serials: { agent: string; updater: string }): void;
  /** Each refusal is logged as one line, so the worker's operator sees why a join did not happen. */
  log?: Pick<Logger, "warn" | "info">;
}

interface OpenHello {
  transcript: Buffer;
  caPem: string;
  at: number;
}

const refused = (message: string, hint?: string) => new DecnetError("join_refused", message, { hint });

export function joinRoutes(d: JoinDeps): Routes {
  const t = d.token;
  const open = new Map<string, OpenHello>();
  let joined = false;
  let finishing = false;

  function usable(): void {
    if (joined) throw new DecnetError("token_used", `this worker has joined as ${t.host} already; its token cannot be used again`);
    if (tokenExpired(t, d.now())) throw new DecnetError("token_expired", `this worker's join token expired at ${new Date(t.expires * 1000).toISOString()}`);
  }

  const hello = route(joinApi.hello, async ({ body }): Promise<HelloResponse> => {
    usable();
    if (body.host !== t.host) throw refused(`this worker is joining as ${t.host}, not ${body.host}`);
    // Pin before anything derived from the secret leaves this worker.
    const seen = await certSha256(body.ca);
    if (seen !== t.ca) {
      throw new DecnetError("ca_mismatch", `the master's CA (sha256 ${seen.slice(0, 16)}…) is not the CA this worker's token names (${t.ca.slice(0, 16)}…)`, {
        detail: { token_ca: t.ca, master_ca: seen },
      });
    }
    const now = d.now().getTime();
    for (const [n, h] of open) if (now - h.at > HELLO_TTL_MS) open.delete(n);
    while (open.size >= MAX_OPEN_HELLOS) open.delete(open.keys().next().value!);
    const nonce = newNonce();
    const m = d.material;
    const transcript = helloTranscript(t, { caPem: body.ca, masterNonce: body.nonce, workerNonce: nonce, tlsCert: m.tls.certPem, agentCsr: m.agent.csrPem, updaterCsr: m.updater.csrPem });
    open.set(nonce, { transcript, caPem: body.ca, at: now });
    return { v: JOIN_VERSION, tls_cert: m.tls.certPem, csr: { agent: m.agent.csrPem, updater: m.updater.csrPem }, nonce, proof: workerHelloProof(t, transcript) };
  });

  const finish = route(joinApi.finish, async ({ body }): Promise<FinishResponse> => {
    usable();
    const h = open.get(body.nonce);
    open.delete(body.nonce); // one try per hello, right or wrong
    if (!h || d.now().getTime() - h.at > HELLO_TTL_MS) throw refused("no open /join/hello has this nonce (used, expired or never issued)", "start the join again");
    const transcript = finishTranscript(h.transcript, { agentCert: body.certs.agent, updaterCert: body.certs.updater, trust: body.trust });
    if (!proofsEqual(body.proof, masterFinishProof(t, transcript))) {
      throw refused("the master's proof does not match this worker's token", "the master holds another token for this host, or something between them changed the exchange");
    }
    if (finishing) throw new DecnetError("busy", "a join is being installed");
    finishing = true;
    try {
      const m = d.material;
      const [agent, updater] = await Promise.all([
        checkIssued(body.certs.agent, { cn: t.host, keyPem: m.agent.keyPem, caPem: h.caPem, now: d.now() }),
        checkIssued(body.certs.updater, { cn: `updater@${t.host}`, keyPem: m.updater.keyPem, caPem: h.caPem, now: d.now() }),
      ]);
      await d.install({ ca: h.caPem, agentCert: body.certs.agent, updaterCert: body.certs.updater, trust: body.trust });
      joined = true;
      open.clear();
      const serials = { agent: agent.serial, updater: updater.serial };
      d.log?.info(`joined as ${t.host}: agent ${agent.serial}, updater ${updater.serial}`);
      queueMicrotask(() => d.onJoined?.(serials));
      return { v: JOIN_VERSION, serials, proof: workerDoneProof(t, transcript) };
    } finally {
      finishing = false;
    }
  });

  const logged = <S extends Route["spec"]>(r: Route<S>): Route<S> => ({
    spec: r.spec,
    async handle(ctx) {
      try {
        return await r.handle(ctx);
      } catch (e) {
        if (e instanceof DecnetError) d.log?.warn(`${r.spec.method} ${r.spec.path} refused: ${e.code}: ${e.message}`);
        throw e;
      }
    },
  });
  return [logged(finish), logged(hello)];
}
