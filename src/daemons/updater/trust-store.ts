/**
 * The trust document a worker holds (DESIGN §11), at <install-dir>/trust.json:
 * outside releases/ (a rollback never rolls trust back), replaced only by a
 * document a held root signed with a higher version (protocol/trust.ts),
 * written atomically and durably. With none held the updater behaves as in
 * v1. At start it adopts a newer document from its bundle (what install.sh
 * and a join deliver) by the same rule, and refuses to start on a held one
 * that is damaged: failing open would drop the signature check.
 */
import { existsSync, readFileSync } from "node:fs";
import { checkTrustUpdate, parseBounded, readTrustDocument, serializeTrust, TRUST_MAX_BYTES, TrustDocument } from "../../protocol/trust.ts";
import { writeFileAtomic } from "../../lib/atomic.ts";
import { DecnetError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";

export class TrustStore {
  private held: TrustDocument | null = null;

  constructor(
    private file: string,
    private log: Logger,
  ) {}

  /** Loads the held document, then offers the bundle's (if any). Throws on a damaged held one. */
  load(bundleFile: string | null, now = new Date()): void {
    if (existsSync(this.file)) {
      const p = readTrustDocument(readFileSync(this.file));
      if (!p.ok) {
        throw new DecnetError("failed", `${this.file} is damaged (${p.message}); the updater will not run without the trust it held`, {
          hint: `restore it, or push the fleet's trust.json again: remove ${this.file} and start with the bundle's trust.json in place`,
        });
      }
      this.held = p.value;
    }
    if (bundleFile && existsSync(bundleFile)) {
      try {
        const r = this.offer(readFileSync(bundleFile), now);
        if (!r.unchanged) this.log.info(`trust document version ${r.version} taken from ${bundleFile}`);
      } catch (e) {
        // An older bundle after a `swarm trust push` is normal: the held one stays.
        if (!(e instanceof DecnetError && e.code === "downgrade")) this.log.warn(`the bundle's ${bundleFile} was not taken: ${(e as Error).message}`);
      }
    }
  }

  get(): TrustDocument | null {
    return this.held;
  }

  /**
   * Takes `bytes` as the new trust document if the held one allows it;
   * throws the refusal (a DecnetError with the protocol's code) otherwise.
   */
  offer(bytes: string | Uint8Array, now = new Date()): { version: number; unchanged: boolean } {
    // Shape first (400); whether its signatures hold is checkTrustUpdate's (403 bad_signature).
    const p = parseBounded(bytes, TrustDocument, "the trust document", TRUST_MAX_BYTES);
    if (!p.ok) throw new DecnetError("bad_request", p.message);
    const r = checkTrustUpdate(this.held, p.value, now);
    if (!r.ok) throw new DecnetError(r.code, r.message);
    if (!r.unchanged) {
      writeFileAtomic(this.file, serializeTrust(r.doc), 0o644);
      this.held = r.doc;
      if (r.expiredSigners.length) this.log.warn(`trust document version ${r.doc.signed.version} certifies expired signing keys: ${r.expiredSigners.join(", ")}`);
    }
    return { version: r.doc.signed.version, unchanged: r.unchanged };
  }
}
