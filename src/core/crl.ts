/**
 * The master's CRL at ~/.decnet/ca/crl.pem: signed by the CA, numbered
 * (never reused: the next number is above both the registry's and the
 * file's), rebuilt from the registry's revoked serials on every revocation.
 */
import { existsSync, readFileSync } from "node:fs";
import { writeFileAtomic } from "../lib/atomic.ts";
import { CRL_NUMBER_OID, CRL_PEM_LABEL, encodeCrlNumber, readCrl } from "../lib/crl.ts";
import { homePaths } from "../lib/paths.ts";
import { DAY_MS, EC_ALG, loadX509 } from "../lib/x509.ts";
import type { Ca } from "./ca.ts";
import { LEAF_DAYS } from "./identity.ts";
import type { IdentityStore, RevokeReason } from "./registry-identity.ts";

/**
 * A CRL lasts as long as a leaf: Bun refuses every client once a loaded CRL's
 * next-update passes, so it must outlive any certificate issued before it.
 * A host the master does not reach for that long has expired certificates anyway.
 */
export const CRL_DAYS = LEAF_DAYS;
/** this-update is backdated like notBefore: Bun refuses every client while it is ahead of the clock. */
const BACKDATE_MS = DAY_MS;

export interface PublishedCrl {
  pem: string;
  number: number;
  nextUpdate: string;
  serials: string[];
}

/** RFC 5280 reason codes. Every entry carries one: @peculiar/x509 writes an empty entry-extension list otherwise, which BoringSSL refuses. */
const REASON_CODE: Record<RevokeReason, number> = { "key-compromise": 1, superseded: 4, decommissioned: 5, "operator-revoked": 9 };

function fileNumber(ca: Ca, file: string): Promise<number> {
  if (!existsSync(file)) return Promise.resolve(0);
  return readCrl(readFileSync(file, "utf8"), ca.pem).then((c) => c.number, () => 0);
}

/** Signs and writes a new CRL from the registry; the number always goes up. */
export async function publishCrl(ca: Ca, store: IdentityStore, o: { now?: Date; file?: string } = {}): Promise<PublishedCrl> {
  const x509 = await loadX509();
  const now = o.now ?? new Date();
  const file = o.file ?? homePaths().crl;
  const number = Math.max((await store.crlState())?.number ?? 0, await fileNumber(ca, file)) + 1;
  const thisUpdate = new Date(now.getTime() - BACKDATE_MS);
  const nextUpdate = new Date(now.getTime() + CRL_DAYS * DAY_MS);
  const revoked = await store.revokedUnexpired(now);
  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.cert.subject,
    thisUpdate,
    nextUpdate,
    signingKey: ca.key,
    signingAlgorithm: EC_ALG,
    extensions: [
      new x509.Extension(CRL_NUMBER_OID, false, encodeCrlNumber(number)),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
    ],
    entries: revoked.map((r) => ({
      serialNumber: r.serial,
      revocationDate: new Date(r.revoked_at!),
      reason: REASON_CODE[r.revoke_reason ?? "superseded"],
    })),
  });
  const pem = x509.PemConverter.encode(crl.rawData, CRL_PEM_LABEL);
  await store.setCrlState({ number, this_update: thisUpdate.toISOString(), next_update: nextUpdate.toISOString() });
  writeFileAtomic(file, pem, 0o644);
  return { pem, number, nextUpdate: nextUpdate.toISOString(), serials: revoked.map((r) => r.serial) };
}

/**
 * The CRL to hand out: the one on disk, or a new one when there is none, it
 * is unreadable, or a third of its life is gone (so every push carries a CRL
 * that lasts).
 */
export async function currentCrl(ca: Ca, store: IdentityStore, o: { now?: Date; file?: string } = {}): Promise<PublishedCrl> {
  const file = o.file ?? homePaths().crl;
  if (existsSync(file)) {
    const pem = readFileSync(file, "utf8");
    const info = await readCrl(pem, ca.pem).catch(() => null);
    const fresh = info && (!info.nextUpdate || info.nextUpdate.getTime() - (o.now ?? new Date()).getTime() > (CRL_DAYS * DAY_MS) / 3);
    if (info && fresh) return { pem, number: info.number, nextUpdate: info.nextUpdate?.toISOString() ?? "", serials: info.serials };
  }
  return publishCrl(ca, store, o);
}

/**
 * Revokes recorded serials (record a certificate issued before records were
 * kept with `recordIssued` first) and publishes the new CRL.
 */
export async function revoke(ca: Ca, store: IdentityStore, serials: string[], reason: RevokeReason, o: { now?: Date; file?: string } = {}): Promise<PublishedCrl & { revoked: string[] }> {
  const revoked = await store.tx(async () => await store.markRevoked(serials, reason, o.now));
  const crl = await publishCrl(ca, store, o);
  return { ...crl, revoked };
}
