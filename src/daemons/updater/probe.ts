/**
 * Probe the agent's /health over agent.sock until a deadline: every 20 ms for
 * the first 2 s (an agent is up in 20–400 ms, and each early attempt is one
 * connect(2) on a unix socket), then backing off to 1 s. Healthy only when
 * the agent reports the expected release id and the pid that was just spawned.
 */
import type { ProbeTranscript } from "../../protocol/common.ts";
import { isAlive } from "../../lib/procfs.ts";
import { localHealth } from "../../lib/control-socket.ts";

export interface ProbeOptions {
  sock: string;
  release: string | null;
  pid: number | null;
  deadlineMs: number;
  /** The new agent's own output since it was started, for the transcript. */
  logTail?: () => string;
}

export async function probe(o: ProbeOptions): Promise<ProbeTranscript> {
  const t0 = performance.now();
  const attempts: ProbeTranscript["attempts"] = [];
  const at = () => Math.round(performance.now() - t0);
  const FAST_MS = 2000;
  let wait = 20;
  let seen: { release: string | null; pid: number | null } = { release: null, pid: null };
  for (;;) {
    if (o.pid !== null && !isAlive(o.pid)) {
      attempts.push({ at_ms: at(), ok: false, note: `agent pid ${o.pid} exited` });
      break;
    }
    try {
      const h = await localHealth(o.sock, Math.max(100, Math.min(1000, o.deadlineMs - at())));
      seen = { release: h.release, pid: h.pid };
      if (h.release === o.release && (o.pid === null || h.pid === o.pid)) {
        attempts.push({ at_ms: at(), ok: true, note: `healthy: release ${h.release?.slice(0, 12)} pid ${h.pid}` });
        return { healthy: true, release: h.release, pid: h.pid, attempts };
      }
      attempts.push({ at_ms: at(), ok: false, note: `answered with release ${h.release?.slice(0, 12) ?? "none"} pid ${h.pid}, want ${o.release?.slice(0, 12) ?? "none"} pid ${o.pid ?? "any"}` });
    } catch (e) {
      const msg = (e as Error).message;
      // Repeating the same failure 40 times says nothing; note changes only.
      if (attempts.at(-1)?.note !== msg) attempts.push({ at_ms: at(), ok: false, note: msg });
    }
    if (at() + wait > o.deadlineMs) {
      attempts.push({ at_ms: at(), ok: false, note: `no healthy answer within ${o.deadlineMs} ms` });
      break;
    }
    await Bun.sleep(wait);
    if (at() > FAST_MS) wait = Math.min(wait * 2, 1000);
  }
  return { healthy: false, release: seen.release, pid: seen.pid, attempts, log_tail: o.logTail?.() ?? "" };
}
