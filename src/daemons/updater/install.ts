/**
 * From verified staging to an installed release: the install check
 * (`staging/decnet version --json` must exit 0 and report the manifest's
 * version), then one rename into releases/<id>.
 */
import { chmodSync, existsSync, renameSync, rmSync } from "node:fs";
import { fsyncPath } from "../../lib/atomic.ts";
import { exchange } from "../../lib/libc.ts";
import { join } from "node:path";
import { DecnetError } from "../../lib/errors.ts";
import { RELEASE_BINARY, RELEASE_MANIFEST, type SlotPaths } from "../../lib/paths.ts";
import { run } from "../../lib/proc.ts";
import { timeouts } from "../../lib/timeouts.ts";
import type { Staged } from "./staging.ts";

const tail = (s: string, n = 8192) => (s.length > n ? s.slice(-n) : s);

export async function installCheck(s: Pick<Staged, "dir" | "manifest">): Promise<void> {
  const exe = join(s.dir, RELEASE_BINARY);
  const r = await run([exe, "version", "--json"], { timeoutMs: timeouts.installCheck(), cwd: s.dir });
  const fail = (why: string) =>
    new DecnetError("install_failed", `install check failed: ${why}; nothing was changed`, {
      detail: { exit_code: r.code, stderr: tail(r.stderr), stdout: tail(r.stdout, 2048) },
    });
  if (r.spawnError) throw fail(`cannot run ${RELEASE_BINARY}: ${r.spawnError}`);
  if (r.timedOut) throw fail(`\`${RELEASE_BINARY} version --json\` did not finish within ${timeouts.installCheck()} ms`);
  if (r.code !== 0) throw fail(`\`${RELEASE_BINARY} version --json\` exited ${r.code}${r.stderr.trim() ? `: ${r.stderr.trim().split("\n").slice(-3).join(" | ")}` : ""}`);
  let version: unknown;
  try {
    version = (JSON.parse(r.stdout) as { version?: unknown }).version;
  } catch {
    throw fail("`version --json` did not print JSON");
  }
  if (version !== s.manifest.version) throw fail(`it reports version ${String(version)}, the manifest says ${s.manifest.version}`);
}

/**
 * Renames staging to releases/<id>. A release already kept is swapped for the
 * copy just verified in one atomic exchange, so pushing a release again
 * repairs a kept copy a faulty disk or a hand edit damaged; the old copy is
 * then removed. (Without renameat2 the kept copy stays and the new one goes.)
 */
export function commit(slots: SlotPaths, s: Pick<Staged, "dir" | "manifest">): string {
  const id = s.manifest.id;
  const dest = slots.release(id);
  chmodSync(s.dir, 0o755); // staging was private while it was unverified
  fsyncPath(join(s.dir, RELEASE_MANIFEST));
  fsyncPath(s.dir);
  if (existsSync(dest)) {
    if (exchange(s.dir, dest)) fsyncPath(slots.releases);
    rmSync(s.dir, { recursive: true, force: true });
    return id;
  }
  renameSync(s.dir, dest);
  fsyncPath(slots.releases);
  return id;
}
