/**
 * One host's push: the release to the agent's slots, the agent's /health
 * checked from outside, then (with --include-self) the updater's own slots —
 * each sent as a delta against what that slot runs when it can, else whole.
 * Returns the host's row, built once.
 */
import { agentHealth } from "../../client/agent.ts";
import { blocks, blocksCompact, fileStream, releases, type UpdaterEndpoint, updaterHealth, upload, waitForUpdaterRelease } from "../../client/updater.ts";
import { IndexFormatError } from "../../protocol/block-index.ts";
import type { BlocksResponse } from "../../protocol/delta.ts";
import type { InstallReport, RolledBackDetail, Slot, SwitchResponse, UpdaterHealth } from "../../protocol/updater.ts";
import { errorMessage, RemoteError } from "../../lib/errors.ts";
import { timeouts } from "../../lib/timeouts.ts";
import type { DeltaPlanner, IndexFetch } from "../delta-planner.ts";
import type { PushRelease } from "../push-release.ts";
import type { Host } from "../registry.ts";
import { type IdentityUpkeep, upkeepNote } from "./upkeep.ts";

/** Delta bodies per base and format, shared by a push's hosts (core/delta-planner.ts). */
export type Deltas = Pick<DeltaPlanner, "body">;
/** What a push needs of the release: its manifest, and its tarball when a host takes it whole. */
export type Release = Pick<PushRelease, "manifest" | "tarball">;

export type Outcome = "updated" | "rolled-back" | "error";
export type SelfOutcome = "updated" | "unchanged" | "rolled-back" | "error";

/** How a release travelled to one slot (DESIGN §17). */
export interface Transfer {
  mode: "full" | "delta";
  /** Bytes the master put on the wire for it. */
  bytes: number;
  /** Bytes the worker sent to plan it (its block index): 0 when the master's cache held the base's index. */
  received: number;
  /** The delta's format (2: zstd against the base; 1: for an updater that does not take 2). */
  format?: 1 | 2;
  /** The release a delta was made against. */
  base?: string;
  /** The error code that made a delta fall back to a full push. */
  fallback?: string;
}

export interface HostResult {
  host: string;
  address: string;
  agent: Outcome;
  /** null when no self-update was attempted (the table shows —); unchanged when it already ran the release. */
  self: SelfOutcome | null;
  detail: string;
  release_id: string;
  /** The agent's release; null when nothing was sent. */
  transfer: Transfer | null;
  /** The updater's own release, with --include-self. */
  self_transfer: Transfer | null;
  /** What the worker's install did (its answer), when it answered one. */
  install: InstallReport | null;
  /** The signing key that signed what was sent, or null when it was unsigned. */
  signer: string | null;
  /**
   * Why the row is not all updated: the worker's error code, a transport
   * code (unreachable, timeout, handshake, identity), aborted (the operator
   * stopped it), unhealthy (the agent failed the outside check after the
   * switch); the updater's code when only the self-update failed. null when
   * everything went in. What a rollout's budget counts (core/rollout/budget).
   */
  error_code: string | null;
  /** The release the agent ran before this push switched it (what --halt-rollback returns it to). */
  previous: string | null;
  /** Renewal and CRL delivery on a host the push reached (upkeep.ts); null when not run (absent from rows made without a push). */
  identity?: IdentityUpkeep | null;
  bytes_sent: number;
  duration_ms: number;
}

export type Progress =
  | { host: string; phase: "uploading"; sent: number; total: number | null }
  | { host: string; phase: "installing" }
  | { host: string; phase: "verifying" }
  | { host: string; phase: "self-updating" }
  | { host: string; phase: "done"; result: HostResult };

/** The worker calls a push makes (client/; a fake in unit tests). */
export interface WorkerClient {
  releases: typeof releases;
  updaterHealth: typeof updaterHealth;
  blocks: (e: UpdaterEndpoint, release: string, slot: Slot, signal?: AbortSignal) => Promise<BlocksResponse>;
  /** POST /blocks: the compact index, for an updater that takes format 2. */
  blocksCompact: typeof blocksCompact;
  upload: typeof upload;
  waitForUpdaterRelease: typeof waitForUpdaterRelease;
  agentHealth: typeof agentHealth;
}

export const workerClient: WorkerClient = { releases, updaterHealth, blocks, blocksCompact, upload, waitForUpdaterRelease, agentHealth };

/** A release set on the worker, as the master addresses it. */
interface Target {
  slot: Slot;
  /** The release that slot runs: what a delta is made against (`health`: the updater's, asked once per host). */
  base(c: WorkerClient, e: UpdaterEndpoint, health: UpdaterHealth, signal?: AbortSignal): Promise<string | null>;
  /** Why there is no base, for the row. */
  noBase: string;
}

// /health says the current release since format 2 (one request fewer, one TLS handshake fewer); older updaters are asked /releases.
const AGENT: Target = { slot: "agent", base: async (c, e, h, signal) => (h.current !== undefined ? h.current : (await c.releases(e, signal)).current), noBase: "no release there yet" };
const UPDATER: Target = { slot: "updater", base: async (_c, _e, h) => h.release, noBase: "the updater runs no release yet" };

/** Codes that mean "this worker cannot rebuild from a delta": send the whole release. */
const FALLBACK = new Set(["delta_unavailable", "not_found", "bad_archive"]);
const kb = (n: number) => `${(n / 1000).toFixed(0)} kB`;

/** A one-line reason for a failed push, with the worker's own words where it has some, and its code. */
export function describe(e: unknown): { outcome: Outcome; detail: string; code: string } {
  if (e instanceof RemoteError) {
    if (e.code === "rolled_back") {
      const d = e.detail as RolledBackDetail | undefined;
      const agentSaid = d?.transcripts.new.log_tail?.trim().split("\n").filter(Boolean).at(-1);
      return { outcome: d?.rolled_back ? "rolled-back" : "error", detail: `${e.message}${agentSaid ? ` — agent said: ${agentSaid}` : ""}`, code: e.code };
    }
    return { outcome: "error", detail: `${e.message}${e.hint ? ` — ${e.hint}` : ""}`, code: e.code };
  }
  return { outcome: "error", detail: errorMessage(e), code: "internal" };
}

/** The row's words for a transfer: "delta 2 kB against …", "… (+ 56 kB index = 58 kB)", "full (delta refused: …)". */
function note(t: Transfer, why: string | null): string {
  const total = t.received > 0 ? ` (+ ${kb(t.received)} index = ${kb(t.bytes + t.received)})` : "";
  if (t.mode === "delta") return `delta ${kb(t.bytes)} against ${t.base!.slice(0, 12)}${total}`;
  return `${why ? `full (${why})` : "full"}${total}`;
}

/**
 * Sends `r` to one slot: as a delta against what it runs when it can, else
 * whole. `onBytes` sees the bytes as they leave; `transfer` is set as soon as
 * the mode is known, so a failed push still says what was sent.
 */
async function send(c: WorkerClient, e: UpdaterEndpoint, r: Release, o: PushOptions, target: Target, health: UpdaterHealth, onBytes: (t: Transfer, total: number | null) => void): Promise<{ result: SwitchResponse; transfer: Transfer; note: string }> {
  let why: string | null = null;
  let fallback: string | undefined;
  let received = 0;
  const delta = o.delta;
  const allowDowngrade = o.allowDowngrade || undefined;
  const signal = o.signal;
  if (delta) {
    try {
      const base = await target.base(c, e, health, signal);
      if (!base) why = target.noBase;
      else {
        // An updater that does not list its formats takes format 1 only (it predates format 2).
        const formats = health.delta_formats ?? [1];
        const fetch: IndexFetch = {
          json: () => c.blocks(e, base, target.slot, signal),
          ...(formats.includes(2) ? { compact: (q: Uint8Array) => c.blocksCompact(e, base, target.slot, q, signal) } : {}),
        };
        const got = await delta.body(base, formats, fetch);
        received += got.received;
        const planned = got.planned;
        if (!planned) why = "a delta would carry most of it";
        else {
          const t: Transfer = { mode: "delta", bytes: 0, received, base, format: planned.format };
          const { result, bytesSent } = await c.upload(e, { slot: target.slot, body: new Blob([planned.body]).stream(), length: planned.body.byteLength, delta: base, format: planned.format, allowDowngrade, signal, onBytes: (n, total) => onBytes(Object.assign(t, { bytes: n }), total) });
          t.bytes = bytesSent;
          return { result, transfer: t, note: note(t, null) };
        }
      }
    } catch (err) {
      // An index the master cannot use (a damaged or hostile answer) costs this host a full push, nothing more.
      if (err instanceof IndexFormatError) {
        why = `its block index was unusable: ${err.message}`;
        fallback = "bad_index";
      } else {
        if (!(err instanceof RemoteError && FALLBACK.has(err.code))) throw err;
        why = `delta refused: ${err.message}`;
        fallback = err.code;
      }
    }
  }
  const t: Transfer = { mode: "full", bytes: 0, received, ...(fallback ? { fallback } : {}) };
  // Packed here, on the first host that needs it whole, once for the push.
  const file = await r.tarball();
  const length = Bun.file(file).size;
  const { result, bytesSent } = await c.upload(e, { slot: target.slot, body: fileStream(file), length, allowDowngrade, signal, onBytes: (n, total) => onBytes(Object.assign(t, { bytes: n }), total) });
  t.bytes = bytesSent;
  return { result, transfer: t, note: note(t, why) };
}

/** /update-self (delta when it can), then wait for the updater to come back on the release. */
async function selfUpdate(c: WorkerClient, h: Host, r: Release, o: PushOptions, health: UpdaterHealth, onProgress: (p: Progress) => void): Promise<{ self: SelfOutcome; detail: string; transfer: Transfer | null; code: string | null }> {
  const e = { host: h.name, address: h.address, port: h.updater_port };
  onProgress({ host: h.name, phase: "self-updating" });
  let transfer: Transfer | null = null;
  try {
    const sent = await send(c, e, r, o, UPDATER, health, (t) => { transfer = t; });
    transfer = sent.transfer;
    if (sent.result.status === "unchanged") return { self: "unchanged", detail: "updater already on it", transfer, code: null };
    await c.waitForUpdaterRelease(e, r.manifest.id, timeouts.selfUpdate(), o.signal);
    return { self: "updated", detail: `updater re-executed on it, ${sent.note}`, transfer, code: null };
  } catch (err) {
    const rolledBack = err instanceof RemoteError && err.code === "self_rolled_back";
    const { detail, code } = describe(err);
    return { self: rolledBack ? "rolled-back" : "error", detail: `self-update: ${detail}`, transfer, code };
  }
}

/** Pushes `r` to host `h`: one row, whatever happens. */
export interface PushOptions {
  includeSelf: boolean;
  delta: Deltas | null;
  onProgress: (p: Progress) => void;
  /** The signing key that signed the release, or null (DESIGN §11). */
  signer: string | null;
  /** A signed release older than what a host runs may go in (never below its floor). */
  allowDowngrade?: boolean;
  client?: WorkerClient;
  /** Aborts the host's requests in flight (a rollout's second Ctrl-C); the row then says `aborted`. */
  signal?: AbortSignal;
  /** Identity upkeep on a host once the push has reached it (upkeep.ts). */
  upkeep?: (h: Host) => Promise<IdentityUpkeep>;
  /** The updater's /health, when the caller has just asked it (core/targets.refreshTarget); else asked here. */
  health?: UpdaterHealth | null;
}

/** Transport failures (and an aborted push): the push never reached the host's updater, so neither does the upkeep. */
const UNREACHED = new Set(["unreachable", "timeout", "handshake", "identity"]);

/**
 * A host whose updater holds a trust document takes only signed releases:
 * refused here, before a byte is uploaded, with how to sign.
 */
function requireSignatureIfTrusted(e: UpdaterEndpoint, health: UpdaterHealth, o: PushOptions): void {
  if (o.signer) return;
  const trust = health.trust;
  if (trust) {
    throw new RemoteError(e.host, "unsigned", `requires signed releases (trust document version ${trust.version}) and this release is unsigned; nothing was sent`, 0, undefined,
      "sign it with `decnet release sign FILE` (or keep a signing key in ~/.decnet/trust, and `swarm update` signs what it builds or packs)");
  }
}

export async function pushHost(h: Host, r: Release, o: PushOptions): Promise<HostResult> {
  const c = o.client ?? workerClient;
  const t0 = performance.now();
  let transfer: Transfer | null = null;
  let install: InstallReport | null = null;
  let previous: string | null = null;
  let outcome: { agent: Outcome; detail: string; code: string | null; self?: Awaited<ReturnType<typeof selfUpdate>> };
  try {
    let installing = false;
    const ue = { host: h.name, address: h.address, port: h.updater_port };
    // One /health per host: trust, the updater's own release, the delta formats it takes.
    const uh = o.health ?? (await c.updaterHealth(ue, o.signal));
    requireSignatureIfTrusted(ue, uh, o);
    const sent = await send(c, ue, r, o, AGENT, uh, (t, total) => {
      transfer = t;
      o.onProgress({ host: h.name, phase: "uploading", sent: t.bytes, total });
      if (t.bytes === total && !installing) {
        installing = true;
        o.onProgress({ host: h.name, phase: "installing" });
      }
    });
    transfer = sent.transfer;
    install = sent.result.install ?? null;
    previous = sent.result.previous;
    o.onProgress({ host: h.name, phase: "verifying" });
    // Trust, then verify from outside: the agent itself must report the release.
    // Past the switch, an agent that does not answer is unhealthy, not unreachable (the updater just answered).
    const health = await c.agentHealth({ host: h.name, address: h.address, port: h.agent_port }, o.signal).catch((e: unknown) => {
      throw e instanceof RemoteError && e.code !== "aborted" ? new RemoteError(e.host, "unhealthy", e.message, e.status, e.detail, e.hint) : e;
    });
    if (health.release !== r.manifest.id) {
      outcome = { agent: "error", detail: `updater said updated, but the agent reports release ${health.release?.slice(0, 12) ?? "none"}`, code: "unhealthy" };
    } else {
      const detail = `${r.manifest.version} ${r.manifest.id.slice(0, 12)}, agent pid ${health.pid}, ${sent.note}`;
      if (!o.includeSelf) outcome = { agent: "updated", detail, code: null };
      else {
        const self = await selfUpdate(c, h, r, o, uh, o.onProgress);
        outcome = { agent: "updated", detail: `${detail}; ${self.detail}`, code: self.code, self };
      }
    }
  } catch (e) {
    const { outcome: agent, detail, code } = describe(e);
    outcome = { agent, detail, code };
  }
  const reached = !(outcome.code && (UNREACHED.has(outcome.code) || outcome.code === "aborted"));
  const identity = reached && o.upkeep ? await o.upkeep(h) : null;
  const said = upkeepNote(identity);
  if (said) outcome.detail = `${outcome.detail}; ${said}`;
  const t = transfer as Transfer | null;
  const selfTransfer = outcome.self?.transfer ?? null;
  return {
    host: h.name,
    address: h.address,
    agent: outcome.agent,
    self: outcome.self?.self ?? null,
    detail: outcome.detail,
    release_id: r.manifest.id,
    transfer: t,
    self_transfer: selfTransfer,
    install,
    signer: o.signer,
    error_code: outcome.code,
    previous,
    identity,
    bytes_sent: (t?.bytes ?? 0) + (selfTransfer?.bytes ?? 0),
    duration_ms: Math.round(performance.now() - t0),
  };
}
