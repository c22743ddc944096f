/**
 * Enroll a host: issue its agent (and updater) certificates, write the
 * bundles, record the host and the serials; or, with --updater-only, add the
 * updater bundle a host enrolled without one lacks.
 */
import { copyFileSync, existsSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";
import { DEFAULT_AGENT_PORT, DEFAULT_UPDATER_PORT } from "../../lib/config.ts";
import { DecnetError, usageError } from "../../lib/errors.ts";
import { bundlePaths, homePaths } from "../../lib/paths.ts";
import { duplicateHost, Registry } from "../registry.ts";
import { requireHost } from "./hosts.ts";

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;
const DNS_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

export interface EnrollOptions {
  host: string;
  address?: string;
  sans?: string[];
  updater?: boolean;
  /** Only the updater bundle, for a host already enrolled without one; SANs come from the registry. */
  updaterOnly?: boolean;
  outDir?: string;
  /** A join token instead of bundles (core/swarm/join.ts): nothing is written here, the worker makes its keys. */
  join?: boolean;
  now?: () => Date;
}

export interface EnrollResult {
  host: string;
  address: string;
  sans: string[];
  /** null with --updater-only: the agent bundle is not touched. */
  agentBundle: string | null;
  updaterBundle: string | null;
}

export function validateEnroll(o: EnrollOptions): void {
  if (!LABEL.test(o.host)) throw usageError(`host name ${JSON.stringify(o.host)} is not a DNS label`, "use letters, digits and '-', at most 63, no dots");
  if (o.join && (o.updater || o.updaterOnly || o.outDir !== undefined)) {
    throw usageError("--join writes no bundles: the worker makes its own keys, and joins with both the agent and the updater certificate", "drop --updater, --updater-only and --out-dir");
  }
  if (o.updaterOnly) {
    if (o.address !== undefined || (o.sans ?? []).length > 0 || o.updater) {
      throw usageError("--updater-only takes the address and SANs the registry holds", "drop --address, --sans and --updater");
    }
    return;
  }
  if (o.address === undefined) throw usageError("--address is required: the address the master reaches the host at");
  for (const a of [o.address, ...(o.sans ?? [])]) {
    if (!isIP(a) && !DNS_NAME.test(a)) throw usageError(`${JSON.stringify(a)} is neither an IP address nor a DNS name`);
  }
}

const updaterDirOf = (agentDir: string) => `${agentDir}-updater`;

export async function enroll(o: EnrollOptions): Promise<EnrollResult> {
  validateEnroll(o);
  if (o.updaterOnly) return enrollUpdaterOnly(o);
  const { loadOrCreateCa, writeBundle } = await import("../ca.ts");
  const { IdentityStore } = await import("../registry-identity.ts");
  const home = homePaths();
  using reg = new Registry();
  // Refuse before writing any file; addHost refuses again if another enroll races us.
  if (await reg.host(o.host)) throw duplicateHost(o.host);
  const address = o.address!;
  const sans = [...new Set([address, ...(o.sans ?? [])])];
  const out = o.outDir ?? join(home.home, "bundles", o.host);
  const now = o.now?.() ?? new Date();
  const ca = await loadOrCreateCa(home);
  const agent = bundlePaths(out, "worker");
  const issued = [await writeBundle(ca, agent, { role: "agent", cn: o.host, sans, now })];
  let updater: string | null = null;
  if (o.updater) {
    const u = bundlePaths(updaterDirOf(agent.dir), "updater");
    issued.push(await writeBundle(ca, u, { role: "updater", cn: `updater@${o.host}`, sans, now }));
    copyTrust(home, u.trust);
    updater = u.dir;
  }
  await reg.addHost({
    name: o.host,
    address,
    sans,
    agent_port: DEFAULT_AGENT_PORT,
    updater_port: DEFAULT_UPDATER_PORT,
    enrolled_at: now.toISOString(),
    has_updater: Boolean(o.updater),
  });
  using store = new IdentityStore(home.db);
  await store.tx(async () => {
    for (const c of issued) await store.recordIssued(c, o.host, now);
    await store.event("enroll", o.host, JSON.stringify({ serials: issued.map((c) => c.serial) }), now);
  });
  return { host: o.host, address, sans, agentBundle: agent.dir, updaterBundle: updater };
}

/**
 * The fleet's trust document into an updater bundle (DESIGN §11), when the
 * master has one: the worker adopts it at its first start.
 */
function copyTrust(home: ReturnType<typeof homePaths>, dest: string): void {
  if (existsSync(home.trust.doc)) copyFileSync(home.trust.doc, dest);
}

/** DESIGN §14 "forgot --updater": the updater bundle only, with the registry's SANs; the agent bundle is not touched. */
async function enrollUpdaterOnly(o: EnrollOptions): Promise<EnrollResult> {
  const home = homePaths();
  using reg = new Registry();
  const h = await requireHost(reg, o.host);
  if (h.has_updater) {
    throw new DecnetError("failed", `host ${o.host} already has an updater bundle`, { hint: "to replace its certificates, renew them (`decnet swarm renew`)" });
  }
  const { loadOrCreateCa, writeBundle } = await import("../ca.ts");
  const { IdentityStore } = await import("../registry-identity.ts");
  const now = o.now?.() ?? new Date();
  const agentDir = bundlePaths(o.outDir ?? join(home.home, "bundles", o.host), "worker").dir;
  const u = bundlePaths(updaterDirOf(agentDir), "updater");
  const ca = await loadOrCreateCa(home);
  const issued = await writeBundle(ca, u, { role: "updater", cn: `updater@${o.host}`, sans: h.sans, now });
  copyTrust(home, u.trust);
  await reg.setHasUpdater(o.host);
  using store = new IdentityStore(home.db);
  await store.tx(async () => {
    await store.recordIssued(issued, o.host, now);
    await store.event("enroll-updater", o.host, JSON.stringify({ serial: issued.serial }), now);
  });
  return { host: o.host, address: h.address, sans: h.sans, agentBundle: null, updaterBundle: u.dir };
}
