/**
 * `swarm update`: get the release once, then push it to each host with a
 * concurrency limit (push.ts does one host) and record one row per host.
 */
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { serializeSignature } from "../../protocol/signature.ts";
import { loadSigner, readReleaseSignature } from "../release-sign.ts";
import { join } from "node:path";
import { os } from "../../lib/os-user.ts";
import { DecnetError, usageError } from "../../lib/errors.ts";
import { homePaths } from "../../lib/paths.ts";
import { DeltaSource } from "../delta.ts";
import { ensureMasterIdentity } from "../identity.ts";
import { type Host, Registry } from "../registry.ts";
import { obtainRelease, type Release } from "../release.ts";
import { selectHosts } from "./hosts.ts";
import { type HostResult, type Progress, pushHost } from "./push.ts";

export type { HostResult, Outcome, Progress, Transfer } from "./push.ts";

export const DEFAULT_CONCURRENCY = 8;

export interface UpdateOptions {
  hosts: string[];
  all: boolean;
  /** After a healthy agent update, replace the updater too (per host). */
  includeSelf?: boolean;
  /** Always send the whole release, never a delta. */
  full?: boolean;
  artifact?: string;
  self?: boolean;
  dryRun?: boolean;
  concurrency?: number;
  cwd?: string;
  /** A signed release older than what a host runs may go in (never below its floor). */
  allowDowngrade?: boolean;
  /** Told which release was chosen (and who signed it), before any network. */
  onRelease?: (r: Release, signer: string | null) => void;
  onProgress?: (p: Progress) => void;
}

export interface UpdateReport {
  release: { id: string; version: string; size: number; source: string; signer: string | null };
  hosts: HostResult[];
  dryRun: boolean;
  targets: Array<{ host: string; address: string }>;
}

/** Runs `fn` over `items` with at most `n` at once, keeping input order in the result. */
export async function mapLimit<T, U>(items: T[], n: number, fn: (t: T) => Promise<U>): Promise<U[]> {
  const out = new Array<U>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  });
  await Promise.all(lanes);
  return out;
}

export async function update(o: UpdateOptions): Promise<UpdateReport> {
  const concurrency = o.concurrency ?? DEFAULT_CONCURRENCY;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw usageError("--concurrency takes a whole number ≥ 1");
  let targets: Host[];
  {
    using reg = new Registry();
    targets = selectHosts(reg, o.hosts, o.all);
  }
  if (targets.length === 0) throw new DecnetError("failed", "no hosts to update (all decommissioned?)", { hint: "see `decnet swarm list`" });
  const cache = join(homePaths().home, "cache");
  mkdirSync(cache, { recursive: true, mode: 0o700 });
  // With a signing key on the master, what it builds or packs is signed (DESIGN §11).
  const signing = existsSync(homePaths().trust.signingKey) ? loadSigner() : null;
  const release = await obtainRelease({ artifact: o.artifact, self: o.self, cwd: o.cwd, outDir: cache, sign: signing?.sign });
  const temp = release.file.startsWith(cache) ? release.file : null;
  try {
    const signature = await readReleaseSignature(release.file);
    o.onRelease?.(release, signature?.signer.id ?? null);
    const summary = { id: release.manifest.id, version: release.manifest.version, size: release.size, source: release.source, signer: signature?.signer.id ?? null };
    const list = targets.map((h) => ({ host: h.name, address: h.address }));
    if (o.dryRun) return { release: summary, hosts: [], dryRun: true, targets: list };
    await ensureMasterIdentity();
    const onProgress = o.onProgress ?? (() => {});
    const delta = o.full ? null : new DeltaSource(release.file, release.manifest, signature ? serializeSignature(signature) : undefined);
    const results = await mapLimit(targets, concurrency, async (h) => {
      const res = await pushHost(h, release, { includeSelf: Boolean(o.includeSelf), delta, onProgress, signer: signature?.signer.id ?? null, allowDowngrade: o.allowDowngrade });
      onProgress({ host: h.name, phase: "done", result: res });
      return res;
    });
    using reg = new Registry();
    const at = new Date().toISOString();
    for (const r of results) {
      reg.recordPush({ host: r.host, kind: "update", release_id: r.release_id, version: release.manifest.version, outcome: r.agent, detail: r.detail, operator: os.operator(), at, duration_ms: r.duration_ms, bytes_sent: r.bytes_sent });
      if (r.self) reg.recordPush({ host: r.host, kind: "update-self", release_id: r.release_id, version: release.manifest.version, outcome: r.self, detail: r.detail, operator: os.operator(), at, duration_ms: r.duration_ms, bytes_sent: 0 });
    }
    return { release: summary, hosts: results, dryRun: false, targets: list };
  } finally {
    if (temp) rmSync(temp, { force: true });
  }
}
