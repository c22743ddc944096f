/**
 * Identity records in the registry's sqlite file: every certificate issued
 * (serial, subject, expiry, revocation), the CRL's number, pending joins, and
 * an event log (who did what, when). All of the identity SQL is here.
 */
import type { Database } from "bun:sqlite";
import { homePaths } from "../lib/paths.ts";
import { os } from "../lib/os-user.ts";
import type { Issued, LeafRole } from "./ca.ts";
import { openSqlite } from "./registry-schema.ts";

/** Why a certificate left service; each maps to an RFC 5280 reason code in the CRL. */
export type RevokeReason = "decommissioned" | "superseded" | "operator-revoked" | "key-compromise";

export interface CertRecord {
  serial: string;
  role: LeafRole;
  name: string;
  cn: string;
  spki: string;
  not_before: string;
  not_after: string;
  issued_at: string;
  issued_by: string;
  revoked_at: string | null;
  revoked_by: string | null;
  revoke_reason: RevokeReason | null;
}

export type JoinState = "pending" | "signed" | "done";

export interface JoinRecord {
  host: string;
  /** The token's secret (base64url) while the join is open; erased once done. */
  secret: string | null;
  created_at: string;
  expires_at: string;
  state: JoinState;
  /** The worker keys (spki sha256 of agent and updater, "a,u") the token was spent on. */
  bound_keys: string | null;
  updated_at: string;
}

export interface IdentityEvent {
  at: string;
  operator: string;
  action: string;
  subject: string;
  detail: string;
}

export interface CrlState {
  number: number;
  this_update: string;
  next_update: string;
}

export class IdentityStore implements Disposable {
  private db: Database;
  constructor(
    file = homePaths().db,
    private readonly who = os.operator(),
  ) {
    // The tables are migration 1 (registry-schema.ts).
    this.db = openSqlite(file, () => who);
  }

  /** Runs `fn` in one transaction (BEGIN IMMEDIATE: a second master waits instead of racing). */
  tx<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  recordIssued(c: Issued, name: string, now = new Date()): void {
    this.db
      .query(`INSERT INTO certs (serial, role, name, cn, spki, not_before, not_after, issued_at, issued_by)
              VALUES ($serial, $role, $name, $cn, $spki, $not_before, $not_after, $issued_at, $issued_by)`)
      .run({ serial: c.serial.toLowerCase(), role: c.role, name, cn: c.cn, spki: c.spki, not_before: c.notBefore, not_after: c.notAfter, issued_at: now.toISOString(), issued_by: this.who });
  }

  cert(serial: string): CertRecord | null {
    return this.db.query<CertRecord, { serial: string }>("SELECT * FROM certs WHERE serial = $serial").get({ serial: serial.toLowerCase() });
  }

  /** Certificates of one subject, newest first; `active` drops revoked and expired ones. */
  certs(name: string, roles: LeafRole[], o: { active?: boolean; now?: Date } = {}): CertRecord[] {
    const rows = this.db
      .query<CertRecord, { name: string }>("SELECT * FROM certs WHERE name = $name ORDER BY issued_at DESC, rowid DESC")
      .all({ name })
      .filter((r) => roles.includes(r.role));
    if (!o.active) return rows;
    const now = (o.now ?? new Date()).toISOString();
    return rows.filter((r) => r.revoked_at === null && r.not_after > now);
  }

  /** Names that have held a certificate of `role` (e.g. every operator ever added). */
  names(role: LeafRole): string[] {
    return this.db.query<{ name: string }, { role: string }>("SELECT DISTINCT name FROM certs WHERE role = $role ORDER BY name").all({ role }).map((r) => r.name);
  }

  /** Marks serials revoked; returns those that were not already. */
  markRevoked(serials: string[], reason: RevokeReason, now = new Date()): string[] {
    const q = this.db.query(`UPDATE certs SET revoked_at = $at, revoked_by = $by, revoke_reason = $reason
                             WHERE serial = $serial AND revoked_at IS NULL`);
    return serials.filter((s) => q.run({ serial: s.toLowerCase(), at: now.toISOString(), by: this.who, reason }).changes === 1);
  }

  /** What the next CRL lists: revoked certificates that have not expired yet. */
  revokedUnexpired(now = new Date()): CertRecord[] {
    return this.db
      .query<CertRecord, { now: string }>("SELECT * FROM certs WHERE revoked_at IS NOT NULL AND not_after > $now ORDER BY revoked_at, serial")
      .all({ now: now.toISOString() });
  }

  crlState(): CrlState | null {
    return this.db.query<CrlState, []>("SELECT number, this_update, next_update FROM crl_state WHERE id = 1").get();
  }

  setCrlState(s: CrlState): void {
    this.db
      .query(`INSERT INTO crl_state (id, number, this_update, next_update) VALUES (1, $number, $this_update, $next_update)
              ON CONFLICT (id) DO UPDATE SET number = $number, this_update = $this_update, next_update = $next_update`)
      .run({ ...s });
  }

  openJoin(host: string, secret: string, expiresAt: Date, now = new Date()): void {
    this.db
      .query(`INSERT INTO joins (host, secret, created_at, expires_at, state, bound_keys, updated_at)
              VALUES ($host, $secret, $now, $expires, 'pending', NULL, $now)
              ON CONFLICT (host) DO UPDATE SET secret = $secret, created_at = $now, expires_at = $expires,
                state = 'pending', bound_keys = NULL, updated_at = $now`)
      .run({ host, secret, now: now.toISOString(), expires: expiresAt.toISOString() });
  }

  join(host: string): JoinRecord | null {
    return this.db.query<JoinRecord, { host: string }>("SELECT * FROM joins WHERE host = $host").get({ host });
  }

  /** Binds an open join to the worker's keys (state `signed`); the caller checked it may. */
  bindJoin(host: string, keys: string, now = new Date()): void {
    this.db.query("UPDATE joins SET state = 'signed', bound_keys = $keys, updated_at = $now WHERE host = $host").run({ host, keys, now: now.toISOString() });
  }

  /** The worker confirmed: the join is spent, and its secret is no longer kept. */
  finishJoin(host: string, now = new Date()): void {
    this.db.query("UPDATE joins SET state = 'done', secret = NULL, updated_at = $now WHERE host = $host").run({ host, now: now.toISOString() });
  }

  event(action: string, subject: string, detail: string, now = new Date()): void {
    this.db
      .query("INSERT INTO identity_events (at, operator, action, subject, detail) VALUES ($at, $operator, $action, $subject, $detail)")
      .run({ at: now.toISOString(), operator: this.who, action, subject, detail });
  }

  events(subject?: string): IdentityEvent[] {
    const sql = `SELECT at, operator, action, subject, detail FROM identity_events ${subject ? "WHERE subject = $subject" : ""} ORDER BY id`;
    return subject ? this.db.query<IdentityEvent, { subject: string }>(sql).all({ subject }) : this.db.query<IdentityEvent, []>(sql).all();
  }

  [Symbol.dispose](): void {
    this.db.close();
  }
}
