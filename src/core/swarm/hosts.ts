/** Host selection shared by the swarm commands: by name, comma list, or --all. */
import { DecnetError, usageError } from "../../lib/errors.ts";
import type { Host, Registry } from "../registry.ts";

export function requireHost(reg: Registry, name: string): Host {
  const h = reg.host(name);
  if (!h) throw usageError(`no host named ${name} is enrolled`, "see `decnet swarm list`");
  if (h.decommissioned_at) throw new DecnetError("failed", `host ${name} was decommissioned at ${h.decommissioned_at}`);
  return h;
}

export function selectHosts(reg: Registry, names: string[], all: boolean): Host[] {
  if (all && names.length > 0) throw usageError("give --host or --all, not both");
  if (!all && names.length === 0) throw usageError("name the hosts: --host NAME[,NAME…] or --all");
  if (all) return reg.hosts().filter((h) => !h.decommissioned_at);
  const unknown = names.filter((n) => !reg.host(n));
  if (unknown.length) throw usageError(`unknown host${unknown.length > 1 ? "s" : ""}: ${unknown.join(", ")}`, "see `decnet swarm list`");
  return [...new Set(names)].map((n) => requireHost(reg, n));
}
