/**
 * `swarm renew (--host H | --all)`: new keys made on each worker, their CSRs
 * signed with the registry's names, both daemons switched to them in place
 * (the agent keeps its pid), the old certificates revoked as superseded.
 */
import { DecnetError } from "../../lib/errors.ts";
import type { AgentSwitch } from "../../protocol/identity.ts";
import { ensureMasterIdentity } from "../identity.ts";
import { type Host, Registry } from "../registry.ts";
import { Leases, leasedDetail } from "../registry-leases.ts";
import { masterOwner } from "../rollout/lifecycle.ts";
import { describe } from "./push.ts";
import { selectHosts } from "./hosts.ts";
import { mapLimit } from "./update.ts";
import { updaterEndpoint } from "./upkeep.ts";

export interface RenewRow {
  host: string;
  outcome: "renewed" | "error" | "leased";
  serials: { agent: string; updater: string } | null;
  not_after: string | null;
  /** The certificates this replaced, now on the CRL. */
  superseded: string[];
  /** The CRL number listing them. */
  crl: number | null;
  /** What the worker's agent did: serves the new certificate now, is not running, or takes it at its next start. */
  agent: AgentSwitch | null;
  detail: string;
}

export async function renew(o: { hosts: string[]; all: boolean; concurrency?: number }): Promise<RenewRow[]> {
  let targets: Host[];
  {
    using reg = new Registry();
    targets = await selectHosts(reg, o.hosts, o.all);
  }
  if (!targets.length) throw new DecnetError("failed", "no hosts to renew", { hint: "see `decnet swarm list`" });
  await ensureMasterIdentity();
  const { loadOrCreateCa } = await import("../ca.ts");
  const { IdentityStore } = await import("../registry-identity.ts");
  const { renewHost } = await import("../renew.ts");
  const ca = await loadOrCreateCa();
  using store = new IdentityStore();
  const none = { serials: null, not_after: null, superseded: [], crl: null, agent: null };
  // No other master touches these hosts meanwhile (DESIGN §15); one it holds is a `leased` row.
  await using leases = new Leases(masterOwner(), null);
  const leased = await leases.acquire(targets.map((h) => h.name));
  // Awaited here: `store` is disposed when this function returns.
  return await mapLimit(targets, o.concurrency ?? 8, async (h): Promise<RenewRow> => {
    const held = leased.get(h.name);
    if (held) return { host: h.name, outcome: "leased", ...none, detail: leasedDetail(held) };
    if (!h.has_updater) {
      return { host: h.name, outcome: "error", ...none, detail: `has no updater bundle to renew through — issue one first: \`decnet swarm enroll --host ${h.name} --updater-only\`` };
    }
    try {
      const r = await renewHost(updaterEndpoint(h), { ca, store, sans: h.sans });
      const agent = r.agent === "not-running" ? "; no agent running (it starts with the new one)" : r.agent === "on-restart" ? "; the agent takes its new certificate at its next start" : "";
      const crl = r.crl === null ? "" : `; the old ones are on CRL #${r.crl} (\`decnet swarm crl push\`)`;
      return {
        host: h.name, outcome: "renewed", serials: r.serials, not_after: r.notAfter, superseded: r.superseded, crl: r.crl, agent: r.agent,
        detail: `agent ${r.serials.agent}, updater ${r.serials.updater}, until ${r.notAfter.slice(0, 10)}${agent}${crl}`,
      };
    } catch (e) {
      return { host: h.name, outcome: "error", ...none, detail: describe(e).detail };
    }
  });
}
