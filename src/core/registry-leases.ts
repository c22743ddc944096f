/**
 * Per-host leases in the registry (DESIGN §15), so two masters sharing it
 * never push to one host at once: a rollout, a plain `swarm update`,
 * `rollback` and `renew` hold a lease on each host they touch. A lease is
 * taken in one statement (insert, or take over only when it is ours, its
 * holder stopped heartbeating, or it belongs to the very rollout being
 * resumed), renewed by a heartbeat while held, and deleted when done; a
 * holder that dies (kill -9, power) loses it after the timeout.
 */
import { DecnetError } from "../lib/errors.ts";
import { err } from "../lib/stdio.ts";
import { env } from "../lib/env.ts";
import { os } from "../lib/os-user.ts";
import { Registry } from "./registry.ts";

export interface Lease {
  host: string;
  /** The master holding it ("hostname pid start-time", lifecycle.masterOwner). */
  holder: string;
  rollout_id: string | null;
  operator: string;
  since: string;
  heartbeat: string;
}

/** How long a lease outlives its last heartbeat: 30 s (DECNET_LEASE_TIMEOUT_MS for tests, 1 s … 10 min). */
export function leaseTimeoutMs(): number {
  const v = Number(env("DECNET_LEASE_TIMEOUT_MS") ?? "");
  return Number.isInteger(v) && v >= 1000 && v <= 600_000 ? v : 30_000;
}

/** One line for a host another master holds. */
export function leasedDetail(l: Lease): string {
  const what = l.rollout_id ? `rollout ${l.rollout_id}` : "a push";
  return `leased by ${what} of ${l.operator} since ${l.since} (heartbeat ${l.heartbeat}); nothing was sent`;
}

export function leasedError(l: Lease): DecnetError {
  return new DecnetError("failed", `host ${l.host} is ${leasedDetail(l)}`, {
    hint: l.rollout_id ? `wait for it (\`decnet swarm rollout show ${l.rollout_id}\`), or retry once its lease expires` : "wait for it and try again",
  });
}

/** The leases one master holds for one job; `release` (or dispose) gives back those it took. */
export class Leases implements AsyncDisposable {
  private readonly reg: Registry;
  private readonly taken = new Set<string>();
  private timer: ReturnType<typeof setInterval> | null = null;
  private beating: Promise<unknown> = Promise.resolve();
  private failing = false;

  constructor(
    private readonly holder: string,
    private readonly rolloutId: string | null,
    file?: string,
    private readonly timeoutMs = leaseTimeoutMs(),
  ) {
    this.reg = new Registry(file);
  }

  /**
   * Takes the lease on each host that is free, expired, already ours, or
   * left by an earlier run of our rollout; returns the leases that stopped
   * the others. Hosts already ours are not given back by `release`.
   */
  async acquire(hosts: string[]): Promise<Map<string, Lease>> {
    const refused = new Map<string, Lease>();
    const db = this.reg.db;
    const todo = [...new Set(hosts)];
    for (const host of todo) {
      const now = new Date();
      const at = now.toISOString();
      const cutoff = new Date(now.getTime() - this.timeoutMs).toISOString();
      const mine = await db.get<{ holder: string }>("SELECT holder FROM leases WHERE host = $host AND holder = $holder", { host, holder: this.holder });
      if (mine) continue;
      const got = await db.run(
        `INSERT INTO leases (host, holder, rollout_id, operator, since, heartbeat) VALUES ($host, $holder, $rollout, $operator, $at, $at)
         ON CONFLICT (host) DO UPDATE SET holder = $holder, rollout_id = $rollout, operator = $operator, since = $at, heartbeat = $at
         WHERE leases.heartbeat < $cutoff OR leases.rollout_id = $rollout`,
        { host, holder: this.holder, rollout: this.rolloutId, operator: os.operator(), at, cutoff },
      );
      if (got === 1) {
        this.taken.add(host);
        continue;
      }
      const l = await db.get<Lease>("SELECT host, holder, rollout_id, operator, since, heartbeat FROM leases WHERE host = $host", { host });
      if (l) refused.set(host, l);
      else todo.push(host); // given back in between: try again
    }
    if (this.taken.size && !this.timer) {
      this.timer = setInterval(() => {
        // Not awaited by anyone: a failure is said once per streak (the lease then lapses after the timeout, and
        // the next host's check names the loss), never thrown.
        this.beating = this.beat().then(
          () => (this.failing = false),
          (e: unknown) => {
            if (!this.failing) err(`decnet: warning: the registry did not take this master's lease heartbeat (${(e as Error).message ?? e}); its hosts' leases lapse ${Math.round(this.timeoutMs / 1000)} s after the last one\n`);
            this.failing = true;
          },
        );
      }, Math.max(250, Math.floor(this.timeoutMs / 3)));
      this.timer.unref?.();
    }
    return refused;
  }

  /**
   * Null while this master still holds `host`'s lease (taken by `acquire`);
   * else who holds it now, or a stand-in naming the loss when no one does.
   */
  async lost(host: string): Promise<Lease | null> {
    if (!this.taken.has(host)) return null;
    // A heartbeat and the check in one statement: still ours, and fresh from now.
    if ((await this.reg.db.run("UPDATE leases SET heartbeat = $at WHERE host = $host AND holder = $holder", { at: new Date().toISOString(), host, holder: this.holder })) === 1) return null;
    const l = await this.reg.db.get<Lease>("SELECT host, holder, rollout_id, operator, since, heartbeat FROM leases WHERE host = $host", { host });
    if (l?.holder === this.holder) return null;
    this.taken.delete(host);
    const at = new Date().toISOString();
    return l ?? { host, holder: "", rollout_id: null, operator: "no one (this master's lease was lost)", since: at, heartbeat: at };
  }

  /**
   * Drops the leases an earlier run of this rollout left (its master died);
   * only for a rollout this master has just claimed, so no one else runs it.
   */
  async dropLeftBy(rolloutId: string): Promise<void> {
    await this.reg.db.run("DELETE FROM leases WHERE rollout_id = $rollout AND holder <> $holder", { rollout: rolloutId, holder: this.holder });
  }

  /** Takes one host's lease or throws the one line naming who holds it. */
  async acquireOne(host: string): Promise<void> {
    const refused = (await this.acquire([host])).get(host);
    if (refused) throw leasedError(refused);
  }

  private async beat(): Promise<void> {
    const at = new Date().toISOString();
    for (const host of this.taken) await this.reg.db.run("UPDATE leases SET heartbeat = $at WHERE host = $host AND holder = $holder", { at, host, holder: this.holder });
  }

  /** Gives back the leases this object took. */
  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.beating;
    for (const host of this.taken) await this.reg.db.run("DELETE FROM leases WHERE host = $host AND holder = $holder", { host, holder: this.holder });
    this.taken.clear();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.release();
    } finally {
      this.reg[Symbol.dispose]();
    }
  }
}

/** Whether `holder` still heartbeats a lease: a master on another machine is alive only so. */
export async function holderAlive(holder: string, file?: string): Promise<boolean> {
  using reg = new Registry(file);
  const cutoff = new Date(Date.now() - leaseTimeoutMs()).toISOString();
  return (await reg.db.get("SELECT host FROM leases WHERE holder = $holder AND heartbeat >= $cutoff", { holder, cutoff })) !== null;
}
