/** Host selection shared by the swarm commands: by name, comma list, or --all. */
import { DecnetError, usageError } from "../../lib/errors.ts";
import type { Host, Registry } from "../registry.ts";

export async function requireHost(reg: Registry, name: string): Promise<Host> {
  const h = await reg.host(name);
  if (!h) throw usageError(`no host named ${name} is enrolled`, "see `decnet swarm list`");
  if (h.decommissioned_at) throw new DecnetError("failed", `host ${name} was decommissioned at ${h.decommissioned_at}`);
  return h;
}

export async function selectHosts(reg: Registry, names: string[], all: boolean): Promise<Host[]> {
  if (all && names.length > 0) throw usageError("give --host or --all, not both");
  if (!all && names.length === 0) throw usageError("name the hosts: --host NAME[,NAME…] or --all");
  if (all) return (await reg.hosts()).filter((h) => !h.decommissioned_at);
  const known = new Set((await reg.hosts()).map((h) => h.name));
  const unknown = names.filter((n) => !known.has(n));
  if (unknown.length) throw usageError(`unknown host${unknown.length > 1 ? "s" : ""}: ${unknown.join(", ")}`, "see `decnet swarm list`");
  const out: Host[] = [];
  for (const n of new Set(names)) out.push(await requireHost(reg, n));
  return out;
}
