/** Updater routes (DESIGN §5): the route table, response shapes and the 409 detail. */
import { z } from "zod";
import { ProbeTranscript } from "./common.ts";
import { BlocksResponse } from "./delta.ts";
import { DeltaFormats } from "./delta2.ts";
import { ReleaseId } from "./manifest.ts";
import { defineRoute } from "./route.ts";

/** The last self-update as the updater recorded it (self.ts). */
export const SelfUpdateRecord = z.object({
  target: ReleaseId,
  from: ReleaseId.nullable(),
  /** trial: re-executed, not confirmed yet; rolled-back: it never confirmed, the previous updater runs. */
  outcome: z.enum(["trial", "confirmed", "rolled-back"]),
  at: z.string(),
  /** The new updater's last words, when it rolled back. */
  log_tail: z.string().max(16_384).optional(),
});
export type SelfUpdateRecord = z.infer<typeof SelfUpdateRecord>;

export const UpdaterHealth = z.object({
  status: z.literal("ok"),
  role: z.literal("updater"),
  version: z.string(),
  /** The CPU this updater runs on (`linux-x64`, `linux-arm64`; DESIGN §16); absent before 2026-12-02. */
  target: z.string().max(64).optional(),
  release: z.string().nullable(),
  pid: z.number().int(),
  busy: z.string().nullable(),
  agent: z.object({
    release: z.string().nullable(),
    pid: z.number().int().nullable(),
    healthy: z.boolean(),
    /** Seconds the agent process has run (from /proc), null when none runs; absent before 2026-12-02. */
    uptime_s: z.number().nonnegative().nullable().optional(),
  }),
  /** notAfter (ISO time) of the updater's and the agent's certificate, null when unreadable; absent before 2026-12-02. */
  certificates: z.object({ updater: z.string().nullable(), agent: z.string().nullable() }).optional(),
  /** The install dir's file system: bytes free to the updater and its size; absent before 2026-12-02. */
  disk: z.object({ free_bytes: z.number().nonnegative(), size_bytes: z.number().nonnegative() }).nullable().optional(),
  /** Absent from updaters before 2026-12-02. */
  self_update: SelfUpdateRecord.nullable().optional(),
  /** The trust document this worker holds, or null: then it takes unsigned releases (DESIGN §11). */
  trust: z.object({ version: z.number().int(), roots: z.array(z.string()), floor: z.string().nullable() }).nullable().optional(),
  /** The agent's release set's current release (what a delta is made against); absent before format 2 (ask /releases). */
  current: z.string().nullable().optional(),
  /** Delta formats it takes (DESIGN §17); absent from updaters before format 2, which take format 1 only. */
  delta_formats: DeltaFormats.optional(),
  /** Open files of the updater deleted under the install dir (each holds its disk blocks): 0 unless something leaks. */
  leaks: z.object({ deleted_fds: z.number().int() }).optional(),
});
export type UpdaterHealth = z.infer<typeof UpdaterHealth>;

/** damaged: no longer what was verified at install (refused as a rollback target, never run again). */
export const ReleaseStatus = z.enum(["good", "failed", "unknown", "damaged"]);

export const ReleaseInfo = z.object({
  id: z.string(),
  version: z.string().nullable(),
  git: z.object({ sha: z.string(), dirty: z.boolean() }).nullable(),
  installed_at: z.string().nullable(),
  status: ReleaseStatus,
  current: z.boolean(),
  previous: z.boolean(),
  /** The signing key that signed it, when it was signed and checked (DESIGN §11); absent before 2026-12-02. */
  signer: z.string().nullable().optional(),
});
export type ReleaseInfo = z.infer<typeof ReleaseInfo>;

export const ReleasesResponse = z.object({
  current: z.string().nullable(),
  previous: z.string().nullable(),
  releases: z.array(ReleaseInfo),
});
export type ReleasesResponse = z.infer<typeof ReleasesResponse>;

export const ReleaseRef = z.object({ id: z.string(), version: z.string() });

const count = z.number().int().nonnegative();

/**
 * What an install did, as data (the master's row and the bench read these):
 * how the release came, what the worker wrote, and where the time went.
 */
export const InstallReport = z.object({
  mode: z.enum(["full", "delta"]),
  /** Body bytes on the wire. */
  bytes_received: count,
  /** Release bytes written into staging. */
  bytes_written: count,
  /** Bytes of a delta already in place in the spare's file (not written). */
  bytes_in_place: count,
  /** Bytes of unchanged prefix whose hashing resumed from the base's state. */
  bytes_resumed: count,
  ms: z.object({ stage: count, check: count, switch: count, probe: count }),
});
export type InstallReport = z.infer<typeof InstallReport>;

/** 200 from /update and /rollback (202 from /update-self). */
export const SwitchResponse = z.object({
  status: z.enum(["updated", "unchanged", "rolled-back"]),
  release: ReleaseRef,
  previous: z.string().nullable(),
  agent_pid: z.number().int().nullable(),
  transcript: ProbeTranscript.nullable(),
  /** Absent from updaters older than protocol 2, null for a rollback. */
  install: InstallReport.nullable().optional(),
});
export type SwitchResponse = z.infer<typeof SwitchResponse>;

/** The `detail` of a 409 from /update (rolled_back) or /rollback (unhealthy). */
export const RolledBackDetail = z.object({
  rolled_back: z.boolean(),
  failed_release: z.string(),
  current: z.string().nullable(),
  transcripts: z.object({ new: ProbeTranscript, old: ProbeTranscript.nullable() }),
});
export type RolledBackDetail = z.infer<typeof RolledBackDetail>;


/** The release set a route acts on: the agent's (default) or the updater's own. */
export const Slot = z.enum(["agent", "updater"]);
export type Slot = z.infer<typeof Slot>;

/**
 * Uploads: a whole release tarball, or with `delta` one against that base
 * release; `allow_downgrade` lets a signed older release in (never below the floor).
 */
const DeltaQuery = { delta: ReleaseId.optional(), format: z.enum(["1", "2"]).optional(), allow_downgrade: z.enum(["true", "false"]).optional() };

/** What POST /trust answers: the version now held. */
export const TrustResponse = z.object({ version: z.number().int(), unchanged: z.boolean() });

/** The most lines GET /logs answers. */
export const LOG_LINES_MAX = 10_000;
/** The most bytes of a log tail: past it, the oldest of the asked-for lines are left out. */
export const LOG_TAIL_MAX_BYTES = 4 * 1024 * 1024;

/**
 * GET /logs: whose output (the agent's, or the updater's own), how many of
 * the last lines, and whether to keep streaming what comes after. Strict:
 * an unknown parameter is refused, not ignored; numbers are plain digits.
 */
export const LogsQuery = z.strictObject({
  source: z.enum(["agent", "updater"]),
  lines: z
    .string()
    .regex(/^[0-9]{1,6}$/, `lines is a whole number from 1 to ${LOG_LINES_MAX}`)
    .transform(Number)
    .pipe(z.number().int().min(1).max(LOG_LINES_MAX))
    .default(100),
  follow: z.enum(["0", "1"]).default("0"),
});
export type LogsQuery = z.output<typeof LogsQuery>;

/** A compact index query in base64: 8 bytes per 1 MiB group, a 2 GiB release is ~22 kB. */
export const BLOCKS_QUERY_MAX = 64 * 1024;
/** A compact index in base64: 8 bytes a block, a 2 GiB release is ~1.4 MB. */
export const BLOCKS_COMPACT_MAX = 2 * 1024 * 1024;

/** The updater's routes, sorted by key; daemons/updater/routes.ts serves exactly these. */
export const updaterApi = {
  blocks: defineRoute({
    method: "GET",
    path: "/blocks",
    query: z.object({ release: ReleaseId, slot: Slot.default("agent") }),
    response: BlocksResponse,
    // A 2 GiB release (the most the updater takes) is 131,072 digests: ~5.6 MB in base64.
    answerLimit: 8 * 1024 * 1024,
  }),
  health: defineRoute({ method: "GET", path: "/health", response: UpdaterHealth }),
  /** The tail of a log as text/plain, one line per line; with follow=1 a stream that ends when the client goes. */
  logs: defineRoute({ method: "GET", path: "/logs", query: LogsQuery, response: z.string(), text: true, answerLimit: LOG_TAIL_MAX_BYTES }),
  /** The Prometheus text exposition format (version 0.0.4). */
  metrics: defineRoute({ method: "GET", path: "/metrics", response: z.string(), text: true, answerLimit: 1024 * 1024 }),
  releases: defineRoute({ method: "GET", path: "/releases", response: ReleasesResponse }),
  /**
   * POST /blocks (format-2 updaters): the compact index (protocol/block-index.ts)
   * of a base, only the 1 MiB groups whose digests differ from the query's;
   * both base64 in JSON (a one-line change answers ~2 kB).
   */
  blocksCompact: defineRoute({
    method: "POST",
    path: "/blocks",
    query: z.object({ release: ReleaseId, slot: Slot.default("agent") }),
    body: z.object({ query: z.string().max(BLOCKS_QUERY_MAX).regex(/^[A-Za-z0-9+/]*={0,2}$/) }),
    response: z.object({ index: z.string().max(BLOCKS_COMPACT_MAX).regex(/^[A-Za-z0-9+/]*={0,2}$/) }),
    answerLimit: BLOCKS_COMPACT_MAX + 1024,
  }),
  rollback: defineRoute({ method: "POST", path: "/rollback", response: SwitchResponse }),
  trust: defineRoute({ method: "POST", path: "/trust", body: "stream", response: TrustResponse }),
  update: defineRoute({ method: "POST", path: "/update", query: z.object(DeltaQuery), body: "stream", response: SwitchResponse }),
  updateSelf: defineRoute({
    method: "POST",
    path: "/update-self",
    query: z.object({ confirm_self: z.literal("true", { message: "add ?confirm_self=true: a self-update has no automatic rollback" }), ...DeltaQuery }),
    body: "stream",
    response: SwitchResponse,
  }),
} as const;
