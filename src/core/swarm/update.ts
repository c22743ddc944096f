/**
 * `swarm update`: get the release once, then push it to each host with a
 * concurrency limit — stream it to the updater, then check the agent's
 * /health over mTLS ourselves — and return one result row per host.
 */
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { os } from "../../lib/os-user.ts";
import { RemoteError, DecnetError, errorMessage, usageError } from "../../lib/errors.ts";
import { homePaths } from "../../lib/paths.ts";
import { agentHealth } from "../../client/agent.ts";
import { blocks, releases, update as pushUpdate, updateDelta, updaterHealth, updateSelf, waitForUpdaterRelease } from "../../client/updater.ts";
import type { BlocksResponse } from "../../protocol/delta.ts";
import { deltaBody, planDelta } from "../delta.ts";
import { timeouts } from "../../lib/timeouts.ts";
import type { RolledBackDetail } from "../../protocol/updater.ts";
import { ensureMasterIdentity } from "../identity.ts";
import { type Host, Registry } from "../registry.ts";
import { obtainRelease, type Release } from "../release.ts";
import { selectHosts } from "./hosts.ts";

export const DEFAULT_CONCURRENCY = 8;

export type Outcome = "updated" | "rolled-back" | "error";

export interface HostResult {
  host: string;
  address: string;
  agent: Outcome;
  self: "updated" | "error" | "—";
  detail: string;
  release_id: string;
  bytes_sent: number;
  duration_ms: number;
}

export type Progress =
  | { host: string; phase: "uploading"; sent: number; total: number | null }
  | { host: string; phase: "installing" }
  | { host: string; phase: "verifying" }
  | { host: string; phase: "self-updating" }
  | { host: string; phase: "done"; result: HostResult };

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
  /** Told which release was chosen, before any network. */
  onRelease?: (r: Release) => void;
  onProgress?: (p: Progress) => void;
}

export interface UpdateReport {
  release: { id: string; version: string; size: number; source: string };
  hosts: HostResult[];
  dryRun: boolean;
  targets: Array<{ host: string; address: string }>;
}

/** A one-line reason for a failed push, with the worker's own words where it has some. */
function describe(e: unknown): { outcome: Outcome; detail: string } {
  if (e instanceof RemoteError) {
    if (e.code === "rolled_back") {
      const d = e.detail as RolledBackDetail | undefined;
      const agentSaid = d?.transcripts.new.log_tail?.trim().split("\n").filter(Boolean).at(-1);
      return { outcome: d?.rolled_back ? "rolled-back" : "error", detail: `${e.message}${agentSaid ? ` — agent said: ${agentSaid}` : ""}` };
    }
    return { outcome: "error", detail: `${e.message}${e.hint ? ` — ${e.hint}` : ""}` };
  }
  return { outcome: "error", detail: errorMessage(e) };
}

/** Shared by every host of a run: one delta body per base release (null: send it whole). */
class DeltaSource {
  private bodies = new Map<string, Promise<Uint8Array | null>>();
  constructor(private r: Release) {}

  body(base: BlocksResponse): Promise<Uint8Array | null> {
    let b = this.bodies.get(base.release);
    if (!b) {
      b = planDelta(this.r.file, this.r.manifest, base).then((p) => (p ? deltaBody(p) : null));
      this.bodies.set(base.release, b);
    }
    return b;
  }
}

/** Codes that mean "this worker cannot rebuild from a delta": send the whole release. */
const FALLBACK = new Set(["delta_unavailable", "not_found", "bad_archive"]);
const kb = (n: number) => `${(n / 1000).toFixed(0)} kB`;

/**
 * Sends the release to the agent's slots (/update) or the updater's own
 * (/update-self): as a delta against the release it runs when it can, else
 * whole. Returns the answer, the bytes sent and a note for the row.
 */
async function send(e: { host: string; address: string; port: number }, r: Release, delta: DeltaSource | null, onBytes: (sent: number, total: number | null) => void, target: "agent" | "updater" = "agent") {
  const self = target === "updater";
  let note = "full";
  if (delta) {
    try {
      const base = self ? (await updaterHealth(e)).release : (await releases(e)).current;
      if (!base) note = self ? "full (the updater runs no release yet)" : "full (no release there yet)";
      else {
        const body = await delta.body(await blocks(e, base, target));
        if (!body) note = "full (a delta would carry most of it)";
        else {
          const { result, bytesSent } = await updateDelta(e, base, body, onBytes, self);
          return { result, bytesSent, note: `delta ${kb(bytesSent)} against ${base.slice(0, 12)}` };
        }
      }
    } catch (err) {
      if (!(err instanceof RemoteError && FALLBACK.has(err.code))) throw err;
      note = `full (delta refused: ${err.message})`;
    }
  }
  const { result, bytesSent } = await (self ? updateSelf(e, r.file, onBytes) : pushUpdate(e, r.file, onBytes));
  return { result, bytesSent, note };
}

/** /update-self (delta when it can), then wait for the updater to come back on the release. */
async function selfUpdate(h: Host, r: Release, delta: DeltaSource | null, onProgress: (p: Progress) => void): Promise<{ self: "updated" | "error"; detail: string; bytes: number }> {
  const e = { host: h.name, address: h.address, port: h.updater_port };
  onProgress({ host: h.name, phase: "self-updating" });
  let bytes = 0;
  try {
    const sent = await send(e, r, delta, (n) => { bytes = n; }, "updater");
    bytes = sent.bytesSent;
    if (sent.result.status !== "unchanged") await waitForUpdaterRelease(e, r.manifest.id, timeouts.selfUpdate());
    return { self: "updated", detail: sent.result.status === "unchanged" ? "updater already on it" : `updater re-executed on it, ${sent.note}`, bytes };
  } catch (err) {
    return { self: "error", detail: `self-update: ${describe(err).detail}`, bytes };
  }
}

async function pushOne(h: Host, r: Release, onProgress: (p: Progress) => void, includeSelf: boolean, delta: DeltaSource | null): Promise<HostResult> {
  const t0 = performance.now();
  const base = { host: h.name, address: h.address, self: "—" as HostResult["self"], release_id: r.manifest.id };
  let bytes = 0;
  try {
    let installing = false;
    const sent = await send({ host: h.name, address: h.address, port: h.updater_port }, r, delta, (n, total) => {
      bytes = n;
      onProgress({ host: h.name, phase: "uploading", sent: n, total });
      if (n === total && !installing) {
        installing = true;
        onProgress({ host: h.name, phase: "installing" });
      }
    });
    bytes = sent.bytesSent;
    onProgress({ host: h.name, phase: "verifying" });
    // Trust, then verify from outside: the agent itself must report the release.
    const health = await agentHealth({ host: h.name, address: h.address, port: h.agent_port });
    if (health.release !== r.manifest.id) {
      return { ...base, agent: "error", detail: `updater said updated, but the agent reports release ${health.release?.slice(0, 12) ?? "none"}`, bytes_sent: bytes, duration_ms: Math.round(performance.now() - t0) };
    }
    const detail = `${r.manifest.version} ${r.manifest.id.slice(0, 12)}, agent pid ${health.pid}, ${sent.note}`;
    if (!includeSelf) return { ...base, agent: "updated", detail, bytes_sent: bytes, duration_ms: Math.round(performance.now() - t0) };
    const s = await selfUpdate(h, r, delta, onProgress);
    return { ...base, agent: "updated", self: s.self, detail: `${detail}; ${s.detail}`, bytes_sent: bytes + s.bytes, duration_ms: Math.round(performance.now() - t0) };
  } catch (e) {
    return { ...base, ...(({ outcome, detail }) => ({ agent: outcome, detail }))(describe(e)), bytes_sent: bytes, duration_ms: Math.round(performance.now() - t0) };
  }
}

/** Runs `fn` over `items` with at most `n` at once, keeping input order in the result. */
async function mapLimit<T, U>(items: T[], n: number, fn: (t: T) => Promise<U>): Promise<U[]> {
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
  const release = await obtainRelease({ artifact: o.artifact, self: o.self, cwd: o.cwd, outDir: cache });
  const temp = release.file.startsWith(cache) ? release.file : null;
  try {
    o.onRelease?.(release);
    const summary = { id: release.manifest.id, version: release.manifest.version, size: release.size, source: release.source };
    const list = targets.map((h) => ({ host: h.name, address: h.address }));
    if (o.dryRun) return { release: summary, hosts: [], dryRun: true, targets: list };
    await ensureMasterIdentity();
    const onProgress = o.onProgress ?? (() => {});
    const delta = o.full ? null : new DeltaSource(release);
    const results = await mapLimit(targets, concurrency, async (h) => {
      const res = await pushOne(h, release, onProgress, Boolean(o.includeSelf), delta);
      onProgress({ host: h.name, phase: "done", result: res });
      return res;
    });
    using reg = new Registry();
    const at = new Date().toISOString();
    for (const r of results) {
      reg.recordPush({ host: r.host, kind: "update", release_id: r.release_id, version: release.manifest.version, outcome: r.agent, detail: r.detail, operator: os.operator(), at, duration_ms: r.duration_ms, bytes_sent: r.bytes_sent });
      if (r.self !== "—") reg.recordPush({ host: r.host, kind: "update-self", release_id: r.release_id, version: release.manifest.version, outcome: r.self, detail: r.detail, operator: os.operator(), at, duration_ms: r.duration_ms, bytes_sent: 0 });
    }
    return { release: summary, hosts: results, dryRun: false, targets: list };
  } finally {
    if (temp) rmSync(temp, { force: true });
  }
}
