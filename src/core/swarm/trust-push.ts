/**
 * `swarm trust push`: the fleet's trust document to each host's updater
 * (POST /trust). A host holding an older version gets, in order, every root
 * rotation it missed and then the latest (it only takes a document a root
 * it holds signed); one already on the latest is left as it is.
 */
import { pushTrust, updaterHealth } from "../../client/updater.ts";
import { serializeTrust } from "../../protocol/trust.ts";
import { DecnetError } from "../../lib/errors.ts";
import { ensureMasterIdentity } from "../identity.ts";
import { Registry } from "../registry.ts";
import { trustPushChain } from "../trust.ts";
import { describe } from "./push.ts";
import { selectHosts } from "./hosts.ts";
import { mapLimit } from "./update.ts";

export interface TrustPushRow {
  host: string;
  /** The version the host held before, and holds now (null: none). */
  before: number | null;
  after: number | null;
  outcome: "updated" | "unchanged" | "error";
  detail: string;
}

export async function trustPush(o: { hosts: string[]; all: boolean; concurrency?: number }): Promise<TrustPushRow[]> {
  let targets;
  {
    using reg = new Registry();
    targets = await selectHosts(reg, o.hosts, o.all);
  }
  if (!targets.length) throw new DecnetError("failed", "no hosts to send the trust document to", { hint: "see `decnet swarm list`" });
  // Loads (and checks) the master's trust.json before any network.
  trustPushChain({ held: null });
  await ensureMasterIdentity();
  return mapLimit(targets, o.concurrency ?? 8, async (h): Promise<TrustPushRow> => {
    const e = { host: h.name, address: h.address, port: h.updater_port };
    let before: number | null = null;
    try {
      before = (await updaterHealth(e)).trust?.version ?? null;
      const chain = trustPushChain({ held: before });
      let after = before;
      let changed = false;
      for (const doc of chain) {
        const r = await pushTrust(e, serializeTrust(doc));
        after = r.version;
        changed ||= !r.unchanged;
      }
      return { host: h.name, before, after, outcome: changed ? "updated" : "unchanged", detail: changed ? `trust document version ${before ?? "none"} → ${after}` : `already on version ${after}` };
    } catch (err) {
      return { host: h.name, before, after: before, outcome: "error", detail: describe(err).detail };
    }
  });
}
