/**
 * The signature check of an install (DESIGN §11), for both release sets:
 * with a trust document held, a release must be signed by a key a held root
 * certified (not expired, not revoked), for this exact release — its id as
 * recomputed from the extracted files, its version and target — and be at
 * or above the floor and not older than what runs (unless the push allows a
 * downgrade). Run before any of the release's code. Without a trust
 * document everything passes, as in v1.
 */
import { checkRelease } from "../../protocol/signature.ts";
import { DecnetError } from "../../lib/errors.ts";
import type { Staged } from "./staging.ts";
import type { TrustStore } from "./trust-store.ts";

export function trustGate(trust: TrustStore | undefined, current: string | null, allowDowngrade: boolean) {
  return (s: Staged): { signer: string | null } => {
    const r = checkRelease(trust?.get() ?? null, s.signature, { id: s.manifest.id, version: s.manifest.version, target: s.manifest.target }, { current, allowDowngrade, now: new Date() });
    if (!r.ok) throw new DecnetError(r.code, r.message);
    return { signer: r.signer };
  };
}
