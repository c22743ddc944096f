/**
 * The one wrapper around running a short-lived command: a timeout
 * (SIGTERM, then SIGKILL), captured stdout/stderr, and no throw on failure.
 */
export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Set when the command could not be started at all. */
  spawnError?: string;
}

export async function run(argv: string[], o: { timeoutMs: number; cwd?: string; env?: Record<string, string> }): Promise<RunResult> {
  let child;
  try {
    child = Bun.spawn(argv, { cwd: o.cwd, env: o.env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  } catch (e) {
    return { code: null, stdout: "", stderr: "", timedOut: false, spawnError: (e as Error).message };
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGTERM");
    setTimeout(() => child.kill("SIGKILL"), 1000).unref();
  }, o.timeoutMs);
  const [stdout, stderr, code] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  clearTimeout(timer);
  return { code: timedOut ? null : code, stdout, stderr, timedOut };
}
