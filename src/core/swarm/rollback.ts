/** `swarm rollback`: ask a host's updater to swap back to its previous release. */
import { rollback as callRollback } from "../../client/updater.ts";
import { RemoteError } from "../../lib/errors.ts";
import { os } from "../../lib/os-user.ts";
import type { SwitchResponse } from "../../protocol/updater.ts";
import { ensureMasterIdentity } from "../identity.ts";
import { Registry } from "../registry.ts";
import { Leases } from "../registry-leases.ts";
import { masterOwner } from "../rollout/lifecycle.ts";
import { requireHost } from "./hosts.ts";

export async function rollback(name: string): Promise<SwitchResponse & { host: string }> {
  await ensureMasterIdentity();
  using reg = new Registry();
  const h = await requireHost(reg, name);
  // Within a rollout (--halt-rollback) the lease is this master's already and stays its own.
  await using lease = new Leases(masterOwner(), null);
  await lease.acquireOne(name);
  const t0 = performance.now();
  const record = async (outcome: string, detail: string, release: string | null, version: string | null) =>
    await reg.recordPush({ host: name, kind: "rollback", release_id: release, version, outcome, detail, operator: os.operator(), at: new Date().toISOString(), duration_ms: Math.round(performance.now() - t0), bytes_sent: 0 });
  try {
    const r = await callRollback({ host: h.name, address: h.address, port: h.updater_port });
    await record("updated", `rolled back to ${r.release.id.slice(0, 12)}`, r.release.id, r.release.version);
    return { ...r, host: name };
  } catch (e) {
    await record("error", e instanceof Error ? e.message : String(e), null, null);
    if (e instanceof RemoteError && e.code === "no_previous") {
      throw new RemoteError(e.host, e.code, "has no previous release to roll back to", e.status, undefined, "push a release first: `decnet swarm update --host " + name + "`");
    }
    throw e;
  }
}
