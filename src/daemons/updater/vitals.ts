/**
 * What /health and /metrics report about the worker beyond its releases:
 * when the updater's and the agent's certificates expire (read from their
 * bundles, so a renewal shows at once), and the install dir's free space.
 */
import { readFileSync, statSync } from "node:fs";
import type { ResolvedUpdaterConfig } from "../../lib/config.ts";
import { certValidity } from "../../lib/cert-expiry.ts";
import { type Space, spaceAt } from "../../lib/disk.ts";
import { bundlePaths, type InstallPaths } from "../../lib/paths.ts";

export interface Certificates {
  /** notAfter as an ISO time, or null when the certificate cannot be read. */
  updater: string | null;
  agent: string | null;
}

export class Vitals {
  private cache = new Map<string, { stamp: string; notAfter: string | null }>();
  private files: { updater: string; agent: string };

  constructor(
    cfg: Pick<ResolvedUpdaterConfig, "updaterDir" | "agentDir">,
    private paths: Pick<InstallPaths, "root">,
  ) {
    this.files = { updater: bundlePaths(cfg.updaterDir, "updater").crt, agent: bundlePaths(cfg.agentDir, "worker").crt };
  }

  /** notAfter of `file`, re-read only when the file changed (a renewal replaces it). */
  private notAfter(file: string): string | null {
    let stamp: string;
    try {
      const st = statSync(file);
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      return null;
    }
    const hit = this.cache.get(file);
    if (hit?.stamp === stamp) return hit.notAfter;
    let notAfter: string | null = null;
    try {
      notAfter = certValidity(readFileSync(file, "utf8")).notAfter.toISOString();
    } catch {}
    this.cache.set(file, { stamp, notAfter });
    return notAfter;
  }

  certificates(): Certificates {
    return { updater: this.notAfter(this.files.updater), agent: this.notAfter(this.files.agent) };
  }

  /** The install dir's file system, or null when statfs fails. */
  disk(): Pick<Space, "free_bytes" | "size_bytes"> | null {
    try {
      const s = spaceAt(this.paths.root);
      return { free_bytes: s.free_bytes, size_bytes: s.size_bytes };
    } catch {
      return null;
    }
  }
}
