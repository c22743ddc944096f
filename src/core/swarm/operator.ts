/**
 * More master identities for other operators or CI runners: `operator add`
 * issues a clientAuth bundle (CN `operator@NAME`) into a folder, `operator
 * revoke` puts every certificate of NAME on the CRL.
 */
import { existsSync } from "node:fs";
import { DecnetError, usageError } from "../../lib/errors.ts";
import { bundlePaths, homePaths } from "../../lib/paths.ts";

const NAME = /^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/i;
export const MAX_OPERATOR_DAYS = 365;

export interface AddOperatorOptions {
  name: string;
  out: string;
  /** Certificate lifetime; default the leaf lifetime (90 days). */
  days?: number;
  now?: Date;
}

export interface OperatorResult {
  name: string;
  serial: string;
  notAfter: string;
  bundle: string;
}

function validateName(name: string): void {
  if (!NAME.test(name)) throw usageError(`operator name ${JSON.stringify(name)} is not allowed`, "use letters, digits, '.', '_' and '-', at most 63");
}

export async function addOperator(o: AddOperatorOptions): Promise<OperatorResult> {
  validateName(o.name);
  if (o.days !== undefined && (!Number.isInteger(o.days) || o.days < 1 || o.days > MAX_OPERATOR_DAYS)) {
    throw usageError(`--days must be a whole number from 1 to ${MAX_OPERATOR_DAYS}`);
  }
  const out = bundlePaths(o.out, "worker");
  if (existsSync(out.key) || existsSync(out.crt)) throw usageError(`${out.dir} already holds an identity`, "give an empty or new --out folder");
  const { loadOrCreateCa, writeBundle } = await import("../ca.ts");
  const { IdentityStore } = await import("../registry-identity.ts");
  const paths = homePaths();
  using store = new IdentityStore(paths.db);
  const now = o.now ?? new Date();
  const active = await store.certs(o.name, ["operator"], { active: true, now });
  if (active.length > 0) {
    throw new DecnetError("failed", `operator ${o.name} already has a valid identity (serial ${active[0]!.serial}, until ${active[0]!.not_after})`, {
      hint: `revoke it first: \`decnet swarm operator revoke ${o.name}\``,
    });
  }
  const ca = await loadOrCreateCa(paths);
  const issued = await writeBundle(ca, out, { role: "operator", cn: `operator@${o.name}`, now, days: o.days });
  await store.recordIssued(issued, o.name, now);
  await store.event("operator-add", o.name, JSON.stringify({ serial: issued.serial, bundle: out.dir }), now);
  return { name: o.name, serial: issued.serial, notAfter: issued.notAfter, bundle: out.dir };
}

export interface RevokeOperatorResult {
  name: string;
  revoked: string[];
  /** The CRL number that lists them; null when nothing was left to revoke. */
  crl: number | null;
}

export async function revokeOperator(name: string, now = new Date()): Promise<RevokeOperatorResult> {
  validateName(name);
  const { IdentityStore } = await import("../registry-identity.ts");
  using store = new IdentityStore(homePaths().db);
  if (!(await store.names("operator")).includes(name)) throw usageError(`no operator named ${name}`, "operators are added with `decnet swarm operator add NAME --out DIR`");
  const serials = (await store.certs(name, ["operator"], { active: true, now })).map((c) => c.serial);
  if (serials.length === 0) return { name, revoked: [], crl: null };
  const { loadOrCreateCa } = await import("../ca.ts");
  const { revoke } = await import("../crl.ts");
  const r = await revoke(await loadOrCreateCa(), store, serials, "operator-revoked", { now });
  await store.event("operator-revoke", name, JSON.stringify({ revoked: r.revoked, crl: r.number }), now);
  return { name, revoked: r.revoked, crl: r.number };
}
