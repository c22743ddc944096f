/**
 * Just enough DER to read a certificate's or a CRL's dates and serial on a
 * daemon's or command's start path, with no X.509 library: @peculiar/x509
 * costs ~40 ms to load and node:crypto ~75 ms.
 */

export interface Tlv {
  tag: number;
  start: number;
  end: number;
}

/** The tag-length-value at `at` (lengths up to 4 octets). */
export function tlv(b: Uint8Array, at: number): Tlv {
  const tag = b[at];
  let len = b[at + 1];
  if (tag === undefined || len === undefined) throw new Error("DER is truncated");
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new Error("DER has a bad length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (b[start + i] ?? 0);
    start += n;
  }
  if (start + len > b.length) throw new Error("DER is truncated");
  return { tag, start, end: start + len };
}

export const isTime = (t: Tlv) => t.tag === 0x17 || t.tag === 0x18;

/** A UTCTime or GeneralizedTime (seconds, Z). */
export function derTime(b: Uint8Array, t: Tlv): Date {
  const s = Buffer.from(b.subarray(t.start, t.end)).toString("latin1");
  const m = t.tag === 0x17 ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s) : t.tag === 0x18 ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s) : null;
  if (!m) throw new Error("DER time is not a UTC time");
  const year = t.tag === 0x17 ? (Number(m[1]) < 50 ? 2000 : 1900) + Number(m[1]) : Number(m[1]);
  return new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}

/** The DER of the first PEM block labelled `label` in `pem`, or null. */
export function pemDer(pem: string, label: string): Uint8Array | null {
  const m = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`).exec(pem);
  return m ? new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ""), "base64")) : null;
}

/** An INTEGER's content as lowercase hex without leading zero octets (how serials are written elsewhere). */
export function derIntegerHex(b: Uint8Array, t: Tlv): string {
  if (t.tag !== 0x02) throw new Error("DER value is not an INTEGER");
  return Buffer.from(b.subarray(t.start, t.end)).toString("hex").replace(/^(00)+(?=.)/, "");
}
