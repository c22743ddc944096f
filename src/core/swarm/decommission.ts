/** Mark a host decommissioned: kept in the registry, excluded from --all. */
import { Registry } from "../registry.ts";
import { requireHost } from "./hosts.ts";

export function decommission(name: string, now = new Date()): { host: string; decommissioned_at: string } {
  using reg = new Registry();
  requireHost(reg, name);
  const at = now.toISOString();
  reg.decommission(name, at);
  return { host: name, decommissioned_at: at };
}
