/** `swarm releases`: what a host's updater keeps (current, previous, the rest). */
import { releases as callReleases } from "../../client/updater.ts";
import type { ReleasesResponse } from "../../protocol/updater.ts";
import { ensureMasterIdentity } from "../identity.ts";
import { Registry } from "../registry.ts";
import { requireHost } from "./hosts.ts";

export async function releases(name: string): Promise<ReleasesResponse> {
  await ensureMasterIdentity();
  using reg = new Registry();
  const h = await requireHost(reg, name);
  return callReleases({ host: h.name, address: h.address, port: h.updater_port });
}
