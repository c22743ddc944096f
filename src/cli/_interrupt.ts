/**
 * Ctrl-C during a rollout (DESIGN §12): the first stops starting hosts and
 * lets those in flight finish; the second aborts them (each worker's journal
 * finishes or undoes its install); a third leaves at once, the registry
 * holding every host that finished (as after a kill -9). SIGTERM (a CI job
 * cancelled, a service manager stopping the master) is both at once: whoever
 * sends it will not wait for hosts in flight and may follow with SIGKILL, so
 * the hosts in flight are aborted now and recorded as interrupted; a second
 * SIGTERM leaves at once.
 */
import { err } from "../lib/stdio.ts";

export interface Interrupts extends Disposable {
  /** Fires on the first Ctrl-C. */
  stop: AbortSignal;
  /** Fires on the second. */
  abort: AbortSignal;
  /** Takes Ctrl-C over from here on: until a rollout starts (a build, say), Ctrl-C simply ends the command. */
  arm(): void;
}

export const INTERRUPTED_EXIT = 130;

export function rolloutInterrupts(): Interrupts {
  const stop = new AbortController();
  const abort = new AbortController();
  let armed = false;
  const onSigint = () => {
    if (!stop.signal.aborted) {
      err("\ndecnet: stopping: no new host starts, hosts in flight finish (Ctrl-C again aborts them)\n");
      stop.abort();
    } else if (!abort.signal.aborted) {
      err("\ndecnet: aborting the hosts in flight (Ctrl-C again leaves at once)\n");
      abort.abort();
    } else {
      process.exit(INTERRUPTED_EXIT);
    }
  };
  const onSigterm = () => {
    if (abort.signal.aborted) process.exit(INTERRUPTED_EXIT);
    err("\ndecnet: SIGTERM: no new host starts, the hosts in flight are aborted (SIGTERM again leaves at once)\n");
    stop.abort();
    abort.abort();
  };
  return {
    stop: stop.signal,
    abort: abort.signal,
    arm() {
      if (!armed) {
        process.on("SIGINT", onSigint);
        process.on("SIGTERM", onSigterm);
      }
      armed = true;
    },
    [Symbol.dispose]: () => {
      process.off("SIGINT", onSigint);
      process.off("SIGTERM", onSigterm);
    },
  };
}
