/**
 * Identity records in the registry (either backend): every certificate issued
 * (serial, subject, expiry, revocation), the CRL's number, pending joins, and
 * an event log (who did what, when). All of the identity SQL is here.
 */
import { os } from "../lib/os-user.ts";
import type { Issued, LeafRole } from "./ca.ts";
import { type Db, openDb, registryLocation } from "./registry-db.ts";

/** A certificate's columns (PostgreSQL's table also has `seq`, its insertion order). */
const CERT = "serial, role, name, cn, spki, not_before, not_after, issued_at, issued_by, revoked_at, revoked_by, revoke_reason";

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
  /** Where the master reaches the joining worker, and the SANs its certificates will carry. */
  address: string | null;
  sans: string | null;
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
  private db: Db;
  /** `file`: a sqlite file or a postgres:// URL; DECNET_REGISTRY_URL wins over the default file (registry-db.ts). */
  constructor(
    file?: string,
    private readonly who = os.operator(),
  ) {
    // The tables are migration 1 (registry-schema.ts, registry-pg.ts).
    this.db = openDb(registryLocation(file), () => who);
  }

  /** Runs `fn` in one transaction (sqlite: BEGIN IMMEDIATE, a second master waits instead of racing). */
  tx<T>(fn: () => Promise<T>): Promise<T> {
    return this.db.tx(fn);
  }

  async recordIssued(c: Issued, name: string, now = new Date()): Promise<void> {
    await this.db.run(
      `INSERT INTO certs (serial, role, name, cn, spki, not_before, not_after, issued_at, issued_by)
       VALUES ($serial, $role, $name, $cn, $spki, $not_before, $not_after, $issued_at, $issued_by)`,
      { serial: c.serial.toLowerCase(), role: c.role, name, cn: c.cn, spki: c.spki, not_before: c.notBefore, not_after: c.notAfter, issued_at: now.toISOString(), issued_by: this.who },
    );
  }

  async cert(serial: string): Promise<CertRecord | null> {
    return await this.db.get<CertRecord>(`SELECT ${CERT} FROM certs WHERE serial = $serial`, { serial: serial.toLowerCase() });
  }

  /** Certificates of one subject, newest first; `active` drops revoked and expired ones. */
  async certs(name: string, roles: LeafRole[], o: { active?: boolean; now?: Date } = {}): Promise<CertRecord[]> {
    // Issued in the same millisecond: the later insert first (sqlite's rowid, PostgreSQL's seq).
    const order = this.db.dialect === "sqlite" ? "rowid" : "seq";
    const rows = (await this.db.all<CertRecord>(`SELECT ${CERT} FROM certs WHERE name = $name ORDER BY issued_at DESC, ${order} DESC`, { name })).filter((r) => roles.includes(r.role));
    if (!o.active) return rows;
    const now = (o.now ?? new Date()).toISOString();
    return rows.filter((r) => r.revoked_at === null && r.not_after > now);
  }

  /** Names that have held a certificate of `role` (e.g. every operator ever added). */
  async names(role: LeafRole): Promise<string[]> {
    return (await this.db.all<{ name: string }>("SELECT DISTINCT name FROM certs WHERE role = $role ORDER BY name", { role })).map((r) => r.name);
  }

  /** Marks serials revoked; returns those that were not already. */
  async markRevoked(serials: string[], reason: RevokeReason, now = new Date()): Promise<string[]> {
    const out: string[] = [];
    for (const s of serials) {
      const n = await this.db.run(
        `UPDATE certs SET revoked_at = $at, revoked_by = $by, revoke_reason = $reason WHERE serial = $serial AND revoked_at IS NULL`,
        { serial: s.toLowerCase(), at: now.toISOString(), by: this.who, reason },
      );
      if (n === 1) out.push(s);
    }
    return out;
  }

  /** What the next CRL lists: revoked certificates that have not expired yet. */
  async revokedUnexpired(now = new Date()): Promise<CertRecord[]> {
    return await this.db.all<CertRecord>(`SELECT ${CERT} FROM certs WHERE revoked_at IS NOT NULL AND not_after > $now ORDER BY revoked_at, serial`, { now: now.toISOString() });
  }

  async crlState(): Promise<CrlState | null> {
    return await this.db.get<CrlState>("SELECT number, this_update, next_update FROM crl_state WHERE id = 1");
  }

  async setCrlState(s: CrlState): Promise<void> {
    await this.db.run(
      `INSERT INTO crl_state (id, number, this_update, next_update) VALUES (1, $number, $this_update, $next_update)
       ON CONFLICT (id) DO UPDATE SET number = $number, this_update = $this_update, next_update = $next_update`,
      { number: s.number, this_update: s.this_update, next_update: s.next_update },
    );
  }

  async openJoin(host: string, secret: string, expiresAt: Date, now = new Date(), where: { address?: string; sans?: string[] } = {}): Promise<void> {
    await this.db.run(
      `INSERT INTO joins (host, secret, created_at, expires_at, state, bound_keys, updated_at, address, sans)
       VALUES ($host, $secret, $now, $expires, 'pending', NULL, $now, $address, $sans)
       ON CONFLICT (host) DO UPDATE SET secret = $secret, created_at = $now, expires_at = $expires,
         state = 'pending', bound_keys = NULL, updated_at = $now, address = $address, sans = $sans`,
      { host, secret, now: now.toISOString(), expires: expiresAt.toISOString(), address: where.address ?? null, sans: where.sans ? JSON.stringify(where.sans) : null },
    );
  }

  async join(host: string): Promise<JoinRecord | null> {
    return await this.db.get<JoinRecord>("SELECT host, secret, created_at, expires_at, state, bound_keys, updated_at, address, sans FROM joins WHERE host = $host", { host });
  }

  /** Binds an open join to the worker's keys (state `signed`); the caller checked it may. */
  async bindJoin(host: string, keys: string, now = new Date()): Promise<void> {
    await this.db.run("UPDATE joins SET state = 'signed', bound_keys = $keys, updated_at = $now WHERE host = $host", { host, keys, now: now.toISOString() });
  }

  /** The worker confirmed: the join is spent, and its secret is no longer kept. */
  async finishJoin(host: string, now = new Date()): Promise<void> {
    await this.db.run("UPDATE joins SET state = 'done', secret = NULL, updated_at = $now WHERE host = $host", { host, now: now.toISOString() });
  }

  async event(action: string, subject: string, detail: string, now = new Date()): Promise<void> {
    await this.db.run("INSERT INTO identity_events (at, operator, action, subject, detail) VALUES ($at, $operator, $action, $subject, $detail)", {
      at: now.toISOString(), operator: this.who, action, subject, detail,
    });
  }

  async events(subject?: string): Promise<IdentityEvent[]> {
    const sql = `SELECT at, operator, action, subject, detail FROM identity_events ${subject ? "WHERE subject = $subject" : ""} ORDER BY id`;
    return await this.db.all<IdentityEvent>(sql, subject ? { subject } : {});
  }

  [Symbol.dispose](): void {
    this.db.close();
  }
}
