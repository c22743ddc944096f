/**
 * A certificate's validity read straight from its DER, for checks on every
 * command's path (is the master identity due for renewal?): importing
 * node:crypto costs ~75 ms here and @peculiar/x509 ~40 ms; this costs none.
 */

interface Tlv {
  tag: number;
  start: number;
  end: number;
}

function tlv(b: Uint8Array, at: number): Tlv {
  const tag = b[at];
  let len = b[at + 1];
  if (tag === undefined || len === undefined) throw new Error("certificate DER is truncated");
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new Error("certificate DER has a bad length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (b[start + i] ?? 0);
    start += n;
  }
  if (start + len > b.length) throw new Error("certificate DER is truncated");
  return { tag, start, end: start + len };
}

function time(b: Uint8Array, t: Tlv): Date {
  const s = Buffer.from(b.subarray(t.start, t.end)).toString("latin1");
  const m = t.tag === 0x17 ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s) : t.tag === 0x18 ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s) : null;
  if (!m) throw new Error("certificate validity is not a UTC time");
  const year = t.tag === 0x17 ? (Number(m[1]) < 50 ? 2000 : 1900) + Number(m[1]) : Number(m[1]);
  return new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}

/** notBefore and notAfter of the first certificate in a PEM text. */
export function certValidity(pem: string): { notBefore: Date; notAfter: Date } {
  const m = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/.exec(pem);
  if (!m) throw new Error("no PEM certificate");
  const b = new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ""), "base64"));
  const cert = tlv(b, 0);
  const tbs = tlv(b, cert.start);
  let at = tbs.start;
  let field = tlv(b, at);
  if (field.tag === 0xa0) field = tlv(b, (at = field.end)); // explicit version
  // serial, signature algorithm, issuer, then validity
  for (let i = 0; i < 3; i++) field = tlv(b, (at = field.end));
  if (field.tag !== 0x30) throw new Error("certificate has no validity");
  const notBefore = tlv(b, field.start);
  const notAfter = tlv(b, notBefore.end);
  return { notBefore: time(b, notBefore), notAfter: time(b, notAfter) };
}

/** Whole days until `pem` expires (negative once it has). */
export function daysLeft(pem: string, now = new Date()): number {
  return Math.floor((certValidity(pem).notAfter.getTime() - now.getTime()) / 86_400_000);
}
