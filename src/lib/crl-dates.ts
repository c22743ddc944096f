/**
 * Whether a daemon may serve with the CRL it holds, decided from the CRL's
 * dates read straight from its DER (no X.509 library on a daemon's start
 * path). Bun refuses *every* client while a loaded CRL's this-update is
 * ahead of the clock or its next-update has passed (test/unit/bun-tls-facts),
 * so a daemon serves without a CRL that is not valid now, and drops it
 * before it lapses: a lapsed CRL would lock the master out for good.
 */
import { existsSync, readFileSync } from "node:fs";
import { derTime, isTime, pemDer, tlv } from "./der.ts";

/** A CRL is dropped this long before its next-update (the listener swap takes a moment). */
export const CRL_DROP_MARGIN_MS = 60_000;

/** this-update and next-update of a PEM CRL ("X509 CRL"). */
export function crlDates(pem: string): { thisUpdate: Date; nextUpdate: Date | null } {
  const b = pemDer(pem, "X509 CRL");
  if (!b) throw new Error("no PEM CRL");
  const list = tlv(b, 0);
  const tbs = tlv(b, list.start);
  let f = tlv(b, tbs.start);
  if (f.tag === 0x02) f = tlv(b, f.end); // version
  f = tlv(b, f.end); // signature algorithm → issuer
  f = tlv(b, f.end); // → this-update
  if (!isTime(f)) throw new Error("CRL has no this-update");
  const thisUpdate = derTime(b, f);
  const next = f.end < tbs.end ? tlv(b, f.end) : null;
  return { thisUpdate, nextUpdate: next && isTime(next) ? derTime(b, next) : null };
}

export type ServingCrl = { pem: string; until: Date | null } | { pem: null; why: string | null };

/** The CRL at `file` if a listener may load it now; else why not (null: there is none). */
export function servingCrl(file: string, now = new Date()): ServingCrl {
  if (!existsSync(file)) return { pem: null, why: null };
  let pem: string;
  let d: ReturnType<typeof crlDates>;
  try {
    pem = readFileSync(file, "utf8");
    d = crlDates(pem);
  } catch (e) {
    return { pem: null, why: `${file} cannot be read as a CRL (${(e as Error).message})` };
  }
  if (d.thisUpdate.getTime() > now.getTime()) return { pem: null, why: `${file} is not valid before ${d.thisUpdate.toISOString()}` };
  if (d.nextUpdate && d.nextUpdate.getTime() - CRL_DROP_MARGIN_MS <= now.getTime()) {
    return { pem: null, why: `${file} lapsed at ${d.nextUpdate.toISOString()}; the master pushes a fresh one with every \`swarm update\`` };
  }
  return { pem, until: d.nextUpdate && new Date(d.nextUpdate.getTime() - CRL_DROP_MARGIN_MS) };
}
