/**
 * The wire contract shared by master and worker: protocol version, headers,
 * the error body and the error code → HTTP status map.
 */
import { z } from "zod";

/**
 * Bumped when a route's shape changes incompatibly; additions that an older
 * peer can ignore (zod drops unknown keys) keep the number.
 * 1 (2026-11-28): first version — /health, /status, /releases, /update, /rollback, /update-self.
 * 1 (2026-11-28, additive): GET /blocks?release=, POST /update?delta= (delta format 1).
 * 1 (2026-11-29, additive): GET /blocks?slot=updater, POST /update-self?delta=.
 * 1 (2026-12-02, additive): /update, /update-self and /rollback answers carry `install`
 *   (what the install did, as data); routes defined once in protocol/ (route.ts).
 * 1 (2026-12-02, additive): the updater's /health carries `leaks: {deleted_fds}`.
 * 1 (2026-12-02, additive): GET /logs?source=&lines=&follow= and GET /metrics (text answers);
 *   /health carries `certificates` (notAfter of both), `disk` and `agent.uptime_s`;
 *   /update and /update-self may answer 507 insufficient_storage.
 * 1 (2026-12-02, additive): the updater's /health carries `target`; /update and /update-self
 *   may answer 400 wrong_target (DESIGN §16).
 */
export const PROTOCOL_VERSION = 1;
export const VERSION_HEADER = "x-decnet-protocol";

/** Every refusal a daemon gives, with the HTTP status it is answered with. */
export const ERROR_STATUS = {
  bad_request: 400,
  bad_archive: 400,
  bad_certificate: 400,
  confirm_required: 400,
  // A release built for another CPU than the worker's, or whose executable is not what its manifest says (DESIGN §16).
  wrong_target: 400,
  join_refused: 403,
  ca_mismatch: 403,
  // A release or trust document refused under the worker's trust document (DESIGN §11).
  unsigned: 403,
  bad_signature: 403,
  untrusted_signer: 403,
  below_floor: 403,
  downgrade: 403,
  not_found: 404,
  no_previous: 404,
  method_not_allowed: 405,
  rolled_back: 409,
  unhealthy: 409,
  release_damaged: 409,
  stale_crl: 409,
  token_used: 409,
  token_expired: 410,
  delta_unavailable: 412,
  too_large: 413,
  busy: 423,
  // The install dir's file system lacks room for the release (checked before staging).
  insufficient_storage: 507,
  install_failed: 500,
  compose_failed: 500,
  internal: 500,
} as const;
export type ErrorCode = keyof typeof ERROR_STATUS;

export const ErrorBody = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    detail: z.unknown().optional(),
  }),
});
export type ErrorBody = z.infer<typeof ErrorBody>;

/** One step of a health probe, as the updater reports it back. */
export const ProbeAttempt = z.object({
  at_ms: z.number(),
  ok: z.boolean(),
  note: z.string(),
});
export const ProbeTranscript = z.object({
  healthy: z.boolean(),
  release: z.string().nullable(),
  pid: z.number().nullable(),
  attempts: z.array(ProbeAttempt),
  log_tail: z.string().optional(),
});
export type ProbeTranscript = z.infer<typeof ProbeTranscript>;
