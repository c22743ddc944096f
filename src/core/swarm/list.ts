/** Registry rows for `swarm list`; materialises the master identity as a side effect. */
import { ensureMasterIdentity } from "../identity.ts";
import { type Host, Registry } from "../registry.ts";

export async function list(): Promise<Host[]> {
  await ensureMasterIdentity();
  using reg = new Registry();
  return await reg.hosts();
}
