/**
 * Ctrl-C during a rollout (DESIGN §12): the first stops starting hosts and
 * lets those in flight finish; the second aborts them (each worker's journal
 * finishes or undoes its install); a third leaves at once, the registry
 * holding every host that finished (as after a kill -9).
 */
import { err } from "../lib/stdio.ts";

export interface Interrupts extends Disposable {
  /** Fires on the first Ctrl-C. */
  stop: AbortSignal;
  /** Fires on the second. */
  abort: AbortSignal;
}

export const INTERRUPTED_EXIT = 130;

export function rolloutInterrupts(): Interrupts {
  const stop = new AbortController();
  const abort = new AbortController();
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
  process.on("SIGINT", onSigint);
  return { stop: stop.signal, abort: abort.signal, [Symbol.dispose]: () => process.off("SIGINT", onSigint) };
}
