/**
 * Enroll a host: issue its agent (and updater) certificates, write the
 * bundles, record it in the registry.
 */
import { isIP } from "node:net";
import { DEFAULT_AGENT_PORT, DEFAULT_UPDATER_PORT } from "../../lib/config.ts";
import { usageError } from "../../lib/errors.ts";
import { bundlePaths, homePaths } from "../../lib/paths.ts";
import { join } from "node:path";
import { duplicateHost, Registry } from "../registry.ts";

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;
const DNS_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

export interface EnrollOptions {
  host: string;
  address: string;
  sans?: string[];
  updater?: boolean;
  outDir?: string;
  now?: () => Date;
}

export interface EnrollResult {
  host: string;
  address: string;
  sans: string[];
  agentBundle: string;
  updaterBundle: string | null;
}

export function validateEnroll(o: EnrollOptions): void {
  if (!LABEL.test(o.host)) throw usageError(`host name ${JSON.stringify(o.host)} is not a DNS label`, "use letters, digits and '-', at most 63, no dots");
  for (const a of [o.address, ...(o.sans ?? [])]) {
    if (!isIP(a) && !DNS_NAME.test(a)) throw usageError(`${JSON.stringify(a)} is neither an IP address nor a DNS name`);
  }
}

export async function enroll(o: EnrollOptions): Promise<EnrollResult> {
  validateEnroll(o);
  const { loadOrCreateCa, writeBundle } = await import("../ca.ts");
  const home = homePaths();
  using reg = new Registry();
  // Refuse before writing any file; addHost refuses again if another enroll races us.
  if (reg.host(o.host)) throw duplicateHost(o.host);
  const sans = [...new Set([o.address, ...(o.sans ?? [])])];
  const out = o.outDir ?? join(home.home, "bundles", o.host);
  const ca = await loadOrCreateCa(home);
  const agent = bundlePaths(out, "worker");
  await writeBundle(ca, agent, { role: "agent", cn: o.host, sans });
  let updater: string | null = null;
  if (o.updater) {
    const u = bundlePaths(`${agent.dir}-updater`, "updater");
    await writeBundle(ca, u, { role: "updater", cn: `updater@${o.host}`, sans });
    updater = u.dir;
  }
  reg.addHost({
    name: o.host,
    address: o.address,
    sans,
    agent_port: DEFAULT_AGENT_PORT,
    updater_port: DEFAULT_UPDATER_PORT,
    enrolled_at: (o.now?.() ?? new Date()).toISOString(),
    has_updater: Boolean(o.updater),
  });
  return { host: o.host, address: o.address, sans, agentBundle: agent.dir, updaterBundle: updater };
}
