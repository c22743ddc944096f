/**
 * TLS in one place: the server options every daemon uses (only the decnet CA,
 * client certificate required) and the client options the master calls with
 * (its identity, the CA, and a check of the server's CN and SAN).
 */
import { readFileSync } from "node:fs";
import { DecnetError } from "./errors.ts";
import { checkKeyFile } from "./perms.ts";
import type { BundlePaths } from "./paths.ts";

export interface Bundle {
  ca: string;
  cert: string;
  key: string;
}

/** Reads a bundle, naming the first missing or unreadable file. */
export function readBundle(paths: BundlePaths, hint: string): Bundle {
  const read = (file: string) => {
    try {
      return readFileSync(file, "utf8");
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code === "ENOENT" ? "is missing" : "cannot be read";
      throw new DecnetError("failed", `certificate bundle file ${file} ${why}`, { hint, cause: e });
    }
  };
  const b = { ca: read(paths.ca), cert: read(paths.crt), key: read(paths.key) };
  checkKeyFile(paths.key);
  return b;
}

/**
 * TLS 1.2's suites, AEAD only (no CBC, no SHA-1 MACs: nothing LUCKY13 or
 * BEAST can reach); TLS 1.3 has only AEAD suites anyway. ECDSA because
 * every decnet key is P-256.
 */
export const SERVER_CIPHERS = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305";

/** Written out in full, never left to defaults: only decnet-CA clients get in. */
export function serverTls(b: Bundle) {
  return { cert: b.cert, key: b.key, ca: b.ca, requestCert: true, rejectUnauthorized: true, ciphers: SERVER_CIPHERS } as const;
}

/** The server is not who the master called: another CN, or the address is not among its SANs. */
export class ServerIdentityError extends Error {
  override readonly name = "ServerIdentityError";
}

interface PeerCert {
  subject?: { CN?: string };
  subjectaltname?: string;
}

/**
 * Client options for calling a worker: the server must chain to the decnet CA,
 * carry CN `expectedCn` and list the address we dialled among its SANs.
 */
export function clientTls(b: Bundle, expectedCn: string) {
  return {
    cert: b.cert,
    key: b.key,
    ca: b.ca,
    rejectUnauthorized: true,
    checkServerIdentity(host: string, cert: PeerCert): Error | undefined {
      const cn = cert.subject?.CN;
      if (cn !== expectedCn) return new ServerIdentityError(`server identity is CN=${cn ?? "?"}, expected CN=${expectedCn}`);
      const sans = (cert.subjectaltname ?? "").split(/,\s*/).map((s) => s.replace(/^(DNS|IP Address):/, ""));
      if (!sans.includes(host)) return new ServerIdentityError(`server certificate for ${cn} does not list ${host} (SANs: ${sans.join(", ") || "none"})`);
      return undefined;
    },
  };
}
