/**
 * A daemon's mTLS listener that takes new certificates or a new CRL without
 * the process restarting: a second listener on the same port (reusePort)
 * with what the bundle dir holds now, then the first one stops and lets its
 * requests finish. Bun's server.reload({tls}) keeps the old certificate and
 * CRL (test/unit/bun-tls-facts), hence two listeners. A CRL is dropped, with
 * a warning, just before it lapses (lib/crl-dates.ts says why).
 */
import type { Server } from "bun";
import { certSerial } from "../lib/cert-expiry.ts";
import type { Logger } from "../lib/log.ts";
import type { BundlePaths } from "../lib/paths.ts";
import { serverTlsFrom } from "../lib/tls.ts";
import { listen, type ListenOptions } from "./server.ts";

/** setTimeout's longest delay; a later CRL drop is re-armed when this fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface Served {
  /** The serial of the certificate served, lowercase hex. */
  serial: string;
  /** Until when the CRL is enforced; null when none is loaded. */
  crl_until: string | null;
}

export interface TlsListenerOptions extends Omit<ListenOptions, "tls" | "beside"> {
  bundle: BundlePaths;
  /** What to do when the bundle is missing (readBundle's hint). */
  hint: string;
  log: Pick<Logger, "warn" | "info">;
  now?: () => Date;
}

export class TlsListener {
  private server: Server<undefined> | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private current: Served | null = null;

  constructor(private o: TlsListenerOptions) {}

  /** Binds the first listener; throws (one line) when the bundle or the port is not usable. */
  start(): Served {
    return this.open(false);
  }

  /**
   * Serves the bundle dir as it is now from a new listener beside the old,
   * then stops the old. A failure leaves the old listener serving.
   */
  swap(): Promise<Served> {
    const run = this.queue.then(() => this.open(true));
    this.queue = run.catch(() => {});
    return run;
  }

  get served(): Served | null {
    return this.current;
  }

  stop(closeActive = true): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.server?.stop(closeActive);
    this.server = null;
  }

  private open(beside: boolean): Served {
    const now = this.o.now?.() ?? new Date();
    const { tls, crlUntil, note } = serverTlsFrom(this.o.bundle, this.o.hint, now);
    if (note) this.o.log.warn(`serving without a CRL: ${note}`);
    const { bundle: _b, hint: _h, log: _l, now: _n, ...listenOptions } = this.o;
    const next = listen({ ...listenOptions, tls, beside });
    const old = this.server;
    this.server = next;
    old?.stop(false);
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (crlUntil) {
      this.timer = setTimeout(() => void this.swap().catch((e: Error) => this.o.log.warn(`could not drop the lapsing CRL: ${e.message}`)), Math.min(Math.max(crlUntil.getTime() - now.getTime(), 0), MAX_TIMER_MS));
      this.timer.unref();
    }
    this.current = { serial: certSerial(tls.cert), crl_until: crlUntil?.toISOString() ?? null };
    return this.current;
  }
}
