/**
 * The one wrapper around running a short-lived command: its own process
 * group, a timeout (SIGTERM, then SIGKILL, to the whole group), the tail of
 * stdout/stderr, and no throw on failure. Nothing it leaves behind can hold
 * the caller: a process the command forked that keeps its output open is
 * ended shortly after the command exits, and a daemon told to stop ends
 * every command still running (killRunning).
 */
export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Set when the command could not be started at all. */
  spawnError?: string;
}

/** Output kept per stream: the end, which is where a failure says why. */
const KEEP_BYTES = 64 * 1024;
/** After the command exits, how long what it left behind may keep its output open. */
const AFTER_EXIT_MS = 1_000;

/** Process groups of the commands running now. */
const running = new Set<number>();

function signalGroup(group: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-group, sig);
  } catch {} // already gone
}

/** Ends every command run() has running (their whole groups): for a daemon's shutdown. */
export function killRunning(): void {
  for (const g of running) signalGroup(g, "SIGKILL");
}

/** Reads a stream, keeping its last KEEP_BYTES; `stop()` ends the read where it is. */
function collect(stream: ReadableStream<Uint8Array>) {
  const reader = stream.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  const text = (async () => {
    try {
      for (;;) {
        const r = await reader.read();
        if (r.done) break;
        parts.push(r.value);
        size += r.value.byteLength;
        while (parts.length > 1 && size - parts[0]!.byteLength >= KEEP_BYTES) size -= parts.shift()!.byteLength;
      }
    } catch {} // cancelled
    const all = Buffer.concat(parts);
    return all.subarray(Math.max(0, all.byteLength - KEEP_BYTES)).toString("utf8");
  })();
  return { text, stop: () => void reader.cancel().catch(() => {}) };
}

export async function run(argv: string[], o: { timeoutMs: number; cwd?: string; env?: Record<string, string> }): Promise<RunResult> {
  let child;
  try {
    // Its own process group (and session): a timeout or a shutdown ends what it started too.
    child = Bun.spawn(argv, { cwd: o.cwd, env: o.env, stdin: "ignore", stdout: "pipe", stderr: "pipe", detached: true });
  } catch (e) {
    return { code: null, stdout: "", stderr: "", timedOut: false, spawnError: (e as Error).message };
  }
  const group = child.pid;
  running.add(group);
  const out = collect(child.stdout);
  const err = collect(child.stderr);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    signalGroup(group, "SIGTERM");
    setTimeout(() => signalGroup(group, "SIGKILL"), 1000).unref();
  }, o.timeoutMs);
  try {
    const code = await child.exited;
    clearTimeout(timer);
    // A process the command left in its group may hold the pipes open: end
    // it, and if the pipes still do not close (it left the group), stop reading.
    const late = setTimeout(() => {
      signalGroup(group, "SIGKILL");
      setTimeout(() => {
        out.stop();
        err.stop();
      }, AFTER_EXIT_MS).unref();
    }, AFTER_EXIT_MS);
    const [stdout, stderr] = await Promise.all([out.text, err.text]);
    clearTimeout(late);
    return { code: timedOut ? null : code, stdout, stderr, timedOut };
  } finally {
    clearTimeout(timer);
    running.delete(group);
  }
}
