/**
 * Reading and accepting a CRL, for the daemons and the master alike: parse,
 * check it is the CA's, and `checkCrlUpdate`, which refuses a CRL that is not
 * newer than the one held or that would lock every client out if loaded.
 */
import { DecnetError } from "./errors.ts";
import { firstPemBlock, loadX509 } from "./x509.ts";

/** A CRL bigger than this is refused unread (a 1,000-host fleet's is ~100 KB). */
export const MAX_CRL_BYTES = 4 * 1024 * 1024;
/** PEM label Bun.serve (BoringSSL) accepts; @peculiar/x509's own `toString` writes "CRL", which it refuses. */
export const CRL_PEM_LABEL = "X509 CRL";
export const CRL_NUMBER_OID = "2.5.29.20";

export interface CrlInfo {
  number: number;
  thisUpdate: Date;
  nextUpdate: Date | null;
  /** Revoked serials, lowercase hex. */
  serials: string[];
}

/** DER INTEGER for a CRL number (non-negative, < 2^53). */
export function encodeCrlNumber(n: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`bad CRL number ${n}`);
  let hex = n.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  let body = Buffer.from(hex, "hex");
  if (body[0]! & 0x80) body = Buffer.concat([Buffer.from([0]), body]);
  return Uint8Array.from([0x02, body.length, ...body]);
}

export function decodeCrlNumber(der: ArrayBuffer | Uint8Array): number {
  const b = der instanceof Uint8Array ? der : new Uint8Array(der);
  if (b.length < 3 || b[0] !== 0x02 || b[1] !== b.length - 2 || b.length > 2 + 7) throw new Error("CRL number is not a small DER INTEGER");
  if (b[2]! & 0x80) throw new Error("CRL number is negative");
  return Number.parseInt(Buffer.from(b.subarray(2)).toString("hex"), 16);
}

const refuse = (message: string) => new DecnetError("bad_certificate", message);

/** Parses a CRL and checks the CA signed it; every failure is one `bad_certificate` line. */
export async function readCrl(pem: string, caPem: string): Promise<CrlInfo> {
  const x509 = await loadX509();
  const der = await firstPemBlock(pem, "CRL", MAX_CRL_BYTES);
  let crl: InstanceType<typeof x509.X509Crl>;
  let ca: InstanceType<typeof x509.X509Certificate>;
  try {
    crl = new x509.X509Crl(der);
    ca = new x509.X509Certificate(caPem);
  } catch {
    throw refuse("CRL is not a DER certificate revocation list");
  }
  let signed = false;
  try {
    signed = crl.issuer === ca.subject && (await crl.verify({ publicKey: ca }));
  } catch {}
  if (!signed) throw refuse(`CRL is not signed by this CA (${ca.subject})`);
  const ext = crl.extensions.find((e) => e.type === CRL_NUMBER_OID);
  if (!ext) throw refuse("CRL has no CRL number");
  let number: number;
  try {
    number = decodeCrlNumber(ext.value);
  } catch (e) {
    throw refuse((e as Error).message);
  }
  let serials: string[];
  try {
    serials = crl.entries.map((e) => e.serialNumber.toLowerCase());
  } catch {
    throw refuse("CRL entries cannot be read");
  }
  return { number, thisUpdate: crl.thisUpdate, nextUpdate: crl.nextUpdate ?? null, serials };
}

/**
 * Decides whether a daemon may replace the CRL it holds (`held`, or null) by
 * `offered`. Refused: not the CA's (Bun would then refuse every client), a
 * number not above the held one (an older list could un-revoke), a
 * next-update already past or a this-update still ahead (Bun refuses every
 * client under either). Returns what the offered CRL says, and the held number.
 */
export async function checkCrlUpdate(held: string | null, offered: string, caPem: string, now = new Date()): Promise<CrlInfo & { previous: number | null }> {
  const next = await readCrl(offered, caPem);
  if (next.thisUpdate.getTime() > now.getTime()) {
    throw refuse(`CRL #${next.number} is not valid before ${next.thisUpdate.toISOString()} (this clock: ${now.toISOString()})`);
  }
  if (next.nextUpdate && next.nextUpdate.getTime() <= now.getTime()) {
    throw new DecnetError("stale_crl", `CRL #${next.number} expired at ${next.nextUpdate.toISOString()}`, { hint: "push a fresh one: `decnet swarm crl push`" });
  }
  let current: number | null = null;
  if (held !== null) {
    try {
      current = (await readCrl(held, caPem)).number;
    } catch {} // an unreadable held CRL is replaced by any valid one
    if (current !== null && next.number <= current) {
      throw new DecnetError("stale_crl", `CRL #${next.number} is not newer than CRL #${current} held here`, { detail: { offered: next.number, held: current } });
    }
  }
  return { ...next, previous: current };
}
