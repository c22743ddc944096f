/**
 * The one loader of @peculiar/x509: reflect-metadata first, then the library,
 * with WebCrypto as its provider. Call it lazily: loading costs ~40 ms.
 */
import type * as X509 from "@peculiar/x509";
import { DecnetError } from "./errors.ts";

export type X509Module = typeof X509;

/** ECDSA P-256 with SHA-256: every key and signature decnet makes. */
export const EC_ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
export const DAY_MS = 86_400_000;

let loaded: Promise<X509Module> | undefined;

export function loadX509(): Promise<X509Module> {
  // The polyfill must run before the library evaluates; static imports are
  // hoisted and the bundler may reorder them, so load them in sequence.
  loaded ??= (async () => {
    await import("reflect-metadata");
    const x509: X509Module = await import("@peculiar/x509");
    x509.cryptoProvider.set(crypto);
    return x509;
  })();
  return loaded;
}

/** A random positive 128-bit serial, as hex (RFC 5280 allows up to 20 octets). */
export function randomSerial(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[0] = (b[0]! & 0x7f) | 0x01; // positive, and never a leading zero octet that a parser may strip
  return Buffer.from(b).toString("hex");
}

export function sha256Hex(data: ArrayBuffer | Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(data instanceof Uint8Array ? data : new Uint8Array(data)).digest("hex");
}

export async function privateKeyPem(key: CryptoKey): Promise<string> {
  const x509 = await loadX509();
  return x509.PemConverter.encode(await crypto.subtle.exportKey("pkcs8", key), "PRIVATE KEY");
}

/** Bounded PEM/DER decoding for input from elsewhere: the first block, or a clear refusal. */
export async function firstPemBlock(pem: string, what: string, maxBytes = 16 * 1024): Promise<ArrayBuffer> {
  const x509 = await loadX509();
  if (pem.length > maxBytes) throw new DecnetError("bad_certificate", `${what} is larger than ${maxBytes} bytes`);
  let der: ArrayBuffer | undefined;
  try {
    der = x509.PemConverter.decode(pem)[0];
  } catch {}
  if (!der) throw new DecnetError("bad_certificate", `${what} is not PEM`);
  return der;
}
