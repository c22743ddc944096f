/**
 * Who is operating: recorded with every push, rollout and identity event.
 * `operator@NAME` when this master's identity is an operator identity
 * (`swarm operator add`), else `user@machine` (`unknown` when the user
 * cannot be looked up, as in some containers).
 */
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname, userInfo } from "node:os";
import { homePaths } from "./paths.ts";

const cache = new Map<string, string>();

/** The CN of the master identity's certificate when it is `operator@NAME`, else null. */
function operatorIdentity(crt: string): string | null {
  try {
    const cn = /(?:^|\n)CN=([^\n]+)/.exec(new X509Certificate(readFileSync(crt)).subject)?.[1]?.trim() ?? "";
    return /^operator@[A-Za-z0-9._-]{1,63}$/.test(cn) ? cn : null;
  } catch {
    return null;
  }
}

export const os = {
  operator(): string {
    const crt = homePaths().master.crt;
    const known = cache.get(crt);
    if (known) return known;
    let user = "unknown";
    try {
      user = userInfo().username;
    } catch {}
    const who = operatorIdentity(crt) ?? `${user}@${hostname()}`;
    cache.set(crt, who);
    return who;
  },
};
