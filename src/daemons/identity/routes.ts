/**
 * A joined updater's identity routes (mTLS, master only): /renew/csr makes new
 * agent and updater keys here and returns CSRs; /renew/install checks the
 * certificates against those keys and switches both bundles crash-safe;
 * /crl takes only a newer CRL of this CA. The daemon re-creates its listeners
 * in the callbacks.
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { z } from "zod";
import { route, type Routes } from "../server.ts";
import { writeFileAtomic } from "../../lib/atomic.ts";
import { commitBundle, stageBundle } from "../../lib/bundle-switch.ts";
import { checkCrlUpdate } from "../../lib/crl.ts";
import { DecnetError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { bundlePaths, ensurePrivateDir, renewPaths } from "../../lib/paths.ts";
import { certCn, checkIssued, makeKeyAndCsr } from "../../lib/worker-keys.ts";
import { type CrlPushResponse, identityApi, type RenewCsrResponse, type RenewInstallResponse } from "../../protocol/identity.ts";

export interface IdentityDeps {
  agentDir: string;
  updaterDir: string;
  now: () => Date;
  /** New certificates are in both bundles: re-create the listeners (updater in process, agent via agent.sock). */
  onRenewed?(serials: { agent: string; updater: string }): void | Promise<void>;
  /** A newer CRL is in both bundle dirs (crl.pem): re-create the listeners with it. */
  onCrl?(number: number): void | Promise<void>;
  log?: Pick<Logger, "info" | "warn">;
}

const Pending = z.object({
  agent: z.object({ keyPem: z.string(), csrPem: z.string(), spki: z.string() }),
  updater: z.object({ keyPem: z.string(), csrPem: z.string(), spki: z.string() }),
});
type Pending = z.infer<typeof Pending>;

export function identityRoutes(d: IdentityDeps): Routes {
  const agent = bundlePaths(d.agentDir, "worker");
  const updater = bundlePaths(d.updaterDir, "updater");
  const pendingFile = renewPaths(d.updaterDir).material;
  let busy = false;

  /** One identity change at a time; a second gets 423. */
  async function exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (busy) throw new DecnetError("busy", "another identity change is in flight");
    busy = true;
    try {
      return await fn();
    } finally {
      busy = false;
    }
  }

  function pending(): Pending | null {
    if (!existsSync(pendingFile)) return null;
    try {
      return Pending.parse(JSON.parse(readFileSync(pendingFile, "utf8")));
    } catch {
      return null; // damaged: /renew/csr makes new keys
    }
  }

  async function host(): Promise<string> {
    const cn = await certCn(readFileSync(updater.crt, "utf8"));
    if (!cn.startsWith("updater@")) throw new DecnetError("internal", `this updater's certificate is CN=${cn}, not updater@<host>`);
    return cn.slice("updater@".length);
  }

  const csr = route(identityApi.renewCsr, () =>
    exclusive(async (): Promise<RenewCsrResponse> => {
      // A repeated call (the master retrying) gets the same keys: at most one pending pair.
      let p = pending();
      if (!p) {
        const h = await host();
        const [a, u] = await Promise.all([makeKeyAndCsr(h), makeKeyAndCsr(`updater@${h}`)]);
        p = { agent: a, updater: u };
        ensurePrivateDir(renewPaths(d.updaterDir).dir);
        writeFileAtomic(pendingFile, JSON.stringify(p), 0o600);
      }
      return { csr: { agent: p.agent.csrPem, updater: p.updater.csrPem } };
    }),
  );

  const install = route(identityApi.renewInstall, ({ body }) =>
    exclusive(async (): Promise<RenewInstallResponse> => {
      const p = pending();
      if (!p) throw new DecnetError("bad_request", "no renewal is in progress here", { hint: "call /renew/csr first" });
      const h = await host();
      const caPem = readFileSync(updater.ca, "utf8");
      const now = d.now();
      const [a, u] = await Promise.all([
        checkIssued(body.certs.agent, { cn: h, keyPem: p.agent.keyPem, caPem, now }),
        checkIssued(body.certs.updater, { cn: `updater@${h}`, keyPem: p.updater.keyPem, caPem, now }),
      ]);
      stageBundle(agent, { crt: body.certs.agent, key: p.agent.keyPem });
      stageBundle(updater, { crt: body.certs.updater, key: p.updater.keyPem });
      commitBundle(agent);
      commitBundle(updater);
      rmSync(renewPaths(d.updaterDir).dir, { recursive: true, force: true });
      const serials = { agent: a.serial, updater: u.serial };
      d.log?.info(`renewed: agent ${a.serial}, updater ${u.serial}, until ${a.notAfter}`);
      await d.onRenewed?.(serials);
      return { serials, not_after: a.notAfter };
    }),
  );

  const crl = route(identityApi.crl, ({ body }) =>
    exclusive(async (): Promise<CrlPushResponse> => {
      const held = existsSync(updater.crl) ? readFileSync(updater.crl, "utf8") : null;
      let next;
      try {
        next = await checkCrlUpdate(held, body.crl, readFileSync(updater.ca, "utf8"), d.now());
      } catch (e) {
        if (e instanceof DecnetError) d.log?.warn(`CRL refused: ${e.message}`);
        throw e;
      }
      writeFileAtomic(agent.crl, body.crl, 0o644);
      writeFileAtomic(updater.crl, body.crl, 0o644);
      d.log?.info(`CRL #${next.number} in place (${next.serials.length} revoked)`);
      await d.onCrl?.(next.number);
      return { number: next.number, previous: next.previous };
    }),
  );

  return [crl, csr, install];
}
