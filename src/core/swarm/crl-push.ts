/**
 * `swarm crl push`: the master's CRL to each host's updater, which keeps it
 * beside both bundles and has both daemons enforce it in the handshake. A
 * host that holds this CRL already is left as it is; one holding a newer
 * number refuses it (the master's state is behind: the row says so).
 */
import { DecnetError } from "../../lib/errors.ts";
import { ensureMasterIdentity } from "../identity.ts";
import { type Host, Registry } from "../registry.ts";
import { describe } from "./push.ts";
import { offerCrl } from "./upkeep.ts";
import { selectHosts } from "./hosts.ts";
import { mapLimit } from "./update.ts";

export interface CrlPushRow {
  host: string;
  outcome: "updated" | "unchanged" | "error";
  /** The number the host holds after (null when it could not say). */
  number: number | null;
  previous: number | null;
  detail: string;
}

export async function crlPush(o: { hosts: string[]; all: boolean; concurrency?: number }): Promise<{ number: number; rows: CrlPushRow[] }> {
  let targets: Host[];
  {
    using reg = new Registry();
    targets = await selectHosts(reg, o.hosts, o.all);
  }
  if (!targets.length) throw new DecnetError("failed", "no hosts to send the CRL to", { hint: "see `decnet swarm list`" });
  await ensureMasterIdentity();
  const { loadOrCreateCa } = await import("../ca.ts");
  const { currentCrl } = await import("../crl.ts");
  const { IdentityStore } = await import("../registry-identity.ts");
  using store = new IdentityStore();
  const crl = await currentCrl(await loadOrCreateCa(), store);
  const rows = await mapLimit(targets, o.concurrency ?? 8, async (h): Promise<CrlPushRow> => {
    try {
      const r = await offerCrl(h, crl.pem, crl.number, store);
      const agent = r.agent === "on-restart" ? "; the agent enforces it from its next start" : r.agent === "not-running" ? "; no agent running" : "";
      return r.changed
        ? { host: h.name, outcome: "updated", number: r.number, previous: r.previous, detail: `CRL #${r.previous ?? "none"} → #${r.number} (${crl.serials.length} revoked)${agent}` }
        : { host: h.name, outcome: "unchanged", number: r.number, previous: r.previous, detail: `holds CRL #${r.number} already` };
    } catch (e) {
      return { host: h.name, outcome: "error", number: null, previous: null, detail: describe(e).detail };
    }
  });
  return { number: crl.number, rows };
}
