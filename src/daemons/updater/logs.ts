/**
 * GET /logs: the last lines of the agent's output or the updater's own log,
 * and with follow what comes after, as text/plain. Files (agent.spawn.log,
 * updater/updater.log) are tailed here; under systemd the unit's journal is
 * asked with journalctl. Bounded: lines (the query), bytes per answer, open
 * streams; a stream ends when its client goes, taking its timer or its
 * journalctl with it.
 */
import { closeSync, fstatSync, openSync, readSync, statSync } from "node:fs";
import { LOG_TAIL_MAX_BYTES, type LogsQuery } from "../../protocol/updater.ts";
import { PROTOCOL_VERSION, VERSION_HEADER } from "../../protocol/common.ts";
import type { ResolvedUpdaterConfig } from "../../lib/config.ts";
import { DecnetError } from "../../lib/errors.ts";
import { stderrIsJournal } from "../../lib/log.ts";
import type { InstallPaths } from "../../lib/paths.ts";
import { timeouts } from "../../lib/timeouts.ts";

export type LogSource = { kind: "file"; path: string } | { kind: "journal"; unit: string };

/** Follow streams open at once; each holds a timer or a journalctl. */
export const MAX_FOLLOWERS = 8;
/** The most bytes one poll of a followed file reads. */
const FOLLOW_CHUNK = 1024 * 1024;

/**
 * Where `source`'s lines are: the agent's in agent.spawn.log, or its unit's
 * journal under `--agent-supervisor systemd`; the updater's in updater.log,
 * or its unit's journal when its own stderr is the journal.
 */
export function logSource(cfg: Pick<ResolvedUpdaterConfig, "agentSupervisor">, paths: InstallPaths, source: LogsQuery["source"], journal = stderrIsJournal()): LogSource {
  if (source === "agent") return cfg.agentSupervisor === "systemd" ? { kind: "journal", unit: "decnet-agent.service" } : { kind: "file", path: paths.agentSpawnLog };
  return journal ? { kind: "journal", unit: "decnet-updater.service" } : { kind: "file", path: paths.updater.log };
}

/**
 * The last `lines` lines of `path` (at most `maxBytes`, whole lines only
 * unless one line alone is longer), and the file's size when read: where a
 * follow goes on from. A missing file has no lines yet.
 */
export function tailFile(path: string, lines: number, maxBytes = LOG_TAIL_MAX_BYTES): { text: Uint8Array; size: number; ino: number } {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { text: new Uint8Array(0), size: 0, ino: 0 };
    throw e;
  }
  try {
    const st = fstatSync(fd);
    const size = st.size;
    const chunks: Buffer[] = [];
    let pos = size;
    let got = 0;
    let newlines = 0;
    // One more newline than lines: the one that ends the line before the first wanted.
    while (pos > 0 && got < maxBytes && newlines <= lines) {
      const n = Math.min(64 * 1024, pos, maxBytes - got);
      const buf = Buffer.alloc(n);
      pos -= n;
      const r = readSync(fd, buf, 0, n, pos);
      chunks.unshift(buf.subarray(0, r));
      got += r;
      for (let i = 0; i < r; i++) if (buf[i] === 0x0a) newlines++;
    }
    return { text: lastLines(Buffer.concat(chunks), lines, pos === 0), size, ino: st.ino };
  } finally {
    closeSync(fd);
  }
}

/** The last `lines` lines of `buf`; when it does not start at a line's start, its first partial line is dropped. */
export function lastLines(buf: Buffer, lines: number, fromStart: boolean): Buffer {
  const end = buf.length > 0 && buf[buf.length - 1] === 0x0a ? buf.length - 1 : buf.length;
  let seen = 0;
  for (let i = end; i > 0; ) {
    const nl = buf.lastIndexOf(0x0a, i - 1);
    if (nl < 0) break;
    if (++seen === lines) return buf.subarray(nl + 1);
    i = nl;
  }
  // Fewer lines than asked: all of them from the file's start, or (cut short
  // by the byte bound) from the first whole one; one line alone longer than the bound stays.
  if (fromStart) return buf;
  const first = buf.indexOf(0x0a);
  return first >= 0 && first < end ? buf.subarray(first + 1) : buf;
}

/** journalctl's arguments for a unit's last lines (and with follow, what comes after). */
export function journalArgv(unit: string, lines: number, follow: boolean): string[] {
  return ["journalctl", "-u", unit, "-n", String(lines), "-o", "short-iso", "--no-pager", "-q", ...(follow ? ["-f"] : [])];
}

export function textResponse(body: Uint8Array | ReadableStream<Uint8Array> | string): Response {
  return new Response(body, { headers: { "content-type": "text/plain; charset=utf-8", "x-content-type-options": "nosniff", [VERSION_HEADER]: String(PROTOCOL_VERSION) } });
}

/** The /logs service of one updater: answers, and the follow streams it has open. */
export class UpdaterLogs {
  private open = new Set<() => void>();

  constructor(
    private cfg: Pick<ResolvedUpdaterConfig, "agentSupervisor">,
    private paths: InstallPaths,
  ) {}

  get followers(): number {
    return this.open.size;
  }

  async answer(q: LogsQuery, signal: AbortSignal): Promise<Response> {
    const src = logSource(this.cfg, this.paths, q.source);
    const follow = q.follow === "1";
    if (follow && this.open.size >= MAX_FOLLOWERS) {
      throw new DecnetError("busy", `${MAX_FOLLOWERS} log streams are open on this updater already; close one and try again`);
    }
    if (src.kind === "journal") return textResponse(follow ? this.followJournal(src.unit, q.lines, signal) : await journalTail(src.unit, q.lines));
    const t = tailFile(src.path, q.lines);
    return textResponse(follow ? this.followFile(src.path, t, signal) : t.text);
  }

  /** Ends every open stream: the updater is stopping or re-executing (a journalctl must not outlive it). */
  closeAll(): void {
    for (const stop of [...this.open]) stop();
  }

  /**
   * The tail, then whatever is appended, polled: a file replaced (rotated)
   * or truncated is read again from its start. Reads wait while the client
   * has not taken what was sent (the bytes stay in the file meanwhile).
   */
  private followFile(path: string, first: { text: Uint8Array; size: number; ino: number }, signal: AbortSignal): ReadableStream<Uint8Array> {
    let pos = first.size;
    let ino = first.ino;
    let timer: Timer | undefined;
    let stop = () => {};
    return new ReadableStream<Uint8Array>({
      start: (ctl) => {
        if (first.text.byteLength) ctl.enqueue(first.text);
        stop = () => {
          clearInterval(timer);
          signal.removeEventListener("abort", stop);
          if (this.open.delete(stop)) {
            try { ctl.close(); } catch {}
          }
        };
        this.open.add(stop);
        signal.addEventListener("abort", stop, { once: true });
        timer = setInterval(() => {
          if ((ctl.desiredSize ?? 1) <= 0) return;
          try {
            const chunk = readNew(path, pos, ino);
            ({ pos, ino } = chunk);
            if (chunk.data.byteLength) ctl.enqueue(chunk.data);
          } catch {
            // Unreadable for a moment (being replaced): the next poll tries again.
          }
        }, timeouts.logPoll());
      },
      cancel: () => stop(),
    });
  }

  /** journalctl -f for the unit: its stdout is the stream; the client gone, it is killed. */
  private followJournal(unit: string, lines: number, signal: AbortSignal): ReadableStream<Uint8Array> {
    const child = Bun.spawn(journalArgv(unit, lines, true), { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const reader = child.stdout.getReader();
    let ended = false;
    const stop = () => {
      ended = true;
      signal.removeEventListener("abort", stop);
      this.open.delete(stop);
      child.kill("SIGTERM");
      reader.cancel().catch(() => {});
    };
    this.open.add(stop);
    signal.addEventListener("abort", stop, { once: true });
    return new ReadableStream<Uint8Array>({
      pull: async (ctl) => {
        const r = await reader.read().catch(() => ({ done: true as const, value: undefined }));
        if (!r.done) return ctl.enqueue(r.value);
        // journalctl ended by itself: say why when it failed, then end the stream.
        const code = await child.exited;
        if (!ended && code !== 0) ctl.enqueue(new TextEncoder().encode(`journalctl exited ${code}: ${(await boundedText(child.stderr, 4096)).trim()}\n`));
        stop();
        try { ctl.close(); } catch {}
      },
      cancel: () => stop(),
    });
  }
}

/** What was appended to `path` after `pos` (at most FOLLOW_CHUNK), starting over when the file was replaced or cut. */
function readNew(path: string, pos: number, ino: number): { data: Uint8Array; pos: number; ino: number } {
  let st;
  try {
    st = statSync(path);
  } catch {
    return { data: new Uint8Array(0), pos: 0, ino: 0 };
  }
  if (st.ino !== ino || st.size < pos) pos = 0;
  if (st.size === pos) return { data: new Uint8Array(0), pos, ino: st.ino };
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.alloc(Math.min(FOLLOW_CHUNK, st.size - pos));
    const n = readSync(fd, buf, 0, buf.length, pos);
    return { data: buf.subarray(0, n), pos: pos + n, ino: st.ino };
  } finally {
    closeSync(fd);
  }
}

/** At most `max` bytes of a stream as text; the rest is drained and dropped. */
async function boundedText(s: ReadableStream<Uint8Array>, max: number): Promise<string> {
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (const c of s) {
    if (n < max) chunks.push(c.subarray(0, max - n));
    n += c.byteLength;
  }
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * `journalctl -u UNIT -n N`, keeping only the last LOG_TAIL_MAX_BYTES of what
 * it prints (a journal line may be long), under the journal query timeout.
 */
async function journalTail(unit: string, lines: number): Promise<Uint8Array> {
  let child;
  try {
    child = Bun.spawn(journalArgv(unit, lines, false), { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  } catch (e) {
    throw new DecnetError("internal", `journalctl could not be started: ${(e as Error).message}`);
  }
  const timer = setTimeout(() => child.kill("SIGKILL"), timeouts.systemctlQuery());
  try {
    const chunks: Uint8Array[] = [];
    let kept = 0;
    let dropped = false;
    const stderr = boundedText(child.stderr, 4096);
    for await (const c of child.stdout) {
      chunks.push(c);
      kept += c.byteLength;
      while (kept - chunks[0]!.byteLength >= LOG_TAIL_MAX_BYTES) {
        kept -= chunks.shift()!.byteLength;
        dropped = true;
      }
    }
    const code = await child.exited;
    if (code !== 0) throw new DecnetError("internal", `journalctl -u ${unit} failed (exit ${code}): ${(await stderr).trim().slice(0, 500)}`);
    let all = Buffer.concat(chunks);
    if (all.length > LOG_TAIL_MAX_BYTES) all = all.subarray(all.length - LOG_TAIL_MAX_BYTES);
    return lastLines(all, lines, !dropped && all.length === kept);
  } finally {
    clearTimeout(timer);
  }
}
