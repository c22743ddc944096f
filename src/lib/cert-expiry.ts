/**
 * A certificate's validity and serial read straight from its DER, for checks
 * on every command's and daemon's path (is the master identity due for
 * renewal? which certificate does this listener serve?), with no X.509 library.
 */
import { derIntegerHex, derTime, pemDer, tlv } from "./der.ts";

function tbsFields(pem: string): { b: Uint8Array; fields: ReturnType<typeof tlv>[] } {
  const b = pemDer(pem, "CERTIFICATE");
  if (!b) throw new Error("no PEM certificate");
  const cert = tlv(b, 0);
  const tbs = tlv(b, cert.start);
  const fields = [];
  for (let at = tbs.start; at < tbs.end && fields.length < 6; ) {
    const f = tlv(b, at);
    fields.push(f);
    at = f.end;
  }
  if (fields[0]?.tag === 0xa0) fields.shift(); // explicit version
  return { b, fields };
}

/** notBefore and notAfter of the first certificate in a PEM text. */
export function certValidity(pem: string): { notBefore: Date; notAfter: Date } {
  const { b, fields } = tbsFields(pem);
  // serial, signature algorithm, issuer, then validity
  const validity = fields[3];
  if (validity?.tag !== 0x30) throw new Error("certificate has no validity");
  const notBefore = tlv(b, validity.start);
  const notAfter = tlv(b, notBefore.end);
  return { notBefore: derTime(b, notBefore), notAfter: derTime(b, notAfter) };
}

/** The serial of the first certificate in a PEM text, lowercase hex. */
export function certSerial(pem: string): string {
  const { b, fields } = tbsFields(pem);
  return derIntegerHex(b, fields[0]!);
}

/** Whole days until `pem` expires (negative once it has). */
export function daysLeft(pem: string, now = new Date()): number {
  return Math.floor((certValidity(pem).notAfter.getTime() - now.getTime()) / 86_400_000);
}
