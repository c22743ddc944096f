/**
 * The disk preflight on a real small file system: the install dir is a
 * 150 MB tmpfs with 60 MB taken, where the real ~110 MB release does not
 * fit — 507 insufficient_storage naming both numbers, no staging, nothing
 * written, current kept and its agent untouched, the master's row saying so
 * in one line — while a small release on the same file system goes through.
 */
import { expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readlinkSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FIXTURES, packRelease, release, until } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";
import { isAlive } from "../../src/lib/procfs.ts";

const fleet = useFleet({ workers: 1, env: { DECNET_PROBE_TIMEOUT_MS: "5000" } });

function unavailable(): string | null {
  if (process.getuid?.() !== 0) return "not root (mounting a tmpfs needs it)";
  if (!Bun.which("mount") || !Bun.which("umount")) return "no mount/umount";
  if (!Bun.which("python3")) return "no python3 (the small release's agent is a python3 one-file server)";
  return null;
}
const why = unavailable();
if (why) console.log(`disk-space tests skipped: ${why}`);

/** A tmpfs of `size` mounted at `dir` for the test; on dispose every fleet process (their cwd is in it) is stopped, then it is unmounted. */
function tmpfsAt(dir: string, size: string): AsyncDisposable {
  mkdirSync(dir, { recursive: true });
  const m = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", `size=${size},mode=0755`, "decnet-test", dir], { stderr: "pipe" });
  if (m.exitCode !== 0) throw new Error(`mount tmpfs: ${m.stderr}`);
  return {
    async [Symbol.asyncDispose]() {
      for (const sig of ["SIGTERM", "SIGKILL"] as const) {
        for (const p of fleet.processes()) try { process.kill(p, sig); } catch {}
        await until(() => fleet.processes().every((p) => !isAlive(p)), "the fleet's processes to stop", 5_000).catch(() => {});
      }
      const u = Bun.spawnSync(["umount", dir], { stderr: "pipe" });
      if (u.exitCode !== 0) Bun.spawnSync(["umount", "-l", dir]);
    },
  };
}

const free = (dir: string) => {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
};

test.skipIf(why !== null)("a 110 MB release on a 150 MB tmpfs with 60 MB used: 507 and nothing written, current kept; a small release goes through", async () => {
  const w = fleet.worker("w1");
  await using _fs = tmpfsAt(w.installDir, "150m");
  writeFileSync(join(w.installDir, "other-data"), Buffer.alloc(60 * 1024 * 1024, 1));
  await fleet.startUpdater(w);
  const tiny = await packRelease(join(FIXTURES, "agent-tiny.sh"), join(fleet.root, "tiny.tar.gz"));
  const big = await release("v1");

  const small = await fleet.push(w, tiny.file);
  const agentPid = fleet.pid(w, "agent");
  const freeBefore = free(w.installDir);
  const refused = await fleet.push(w, big.file);
  const freeAfter = free(w.installDir);
  const row = (await fleet.update(["--host", "w1", "--artifact", big.file])).row("w1");
  // The updater's own slot is checked the same way.
  const self = await fleet.request(w, "updater", "/update-self?confirm_self=true", { method: "POST", body: Bun.file(big.file) });
  const selfBody = (await self.json()) as { error: { code: string } };
  const health = await fleet.health(w);
  const d = refused.body.error?.detail;
  expect({
    small: { status: small.status, release: small.body.release?.id },
    refused: {
      status: refused.status,
      code: refused.body.error?.code,
      message: refused.body.error?.message,
      detail: { needed: d?.needed_bytes > 110e6 && d?.needed_bytes < 120e6, free: Math.abs(d?.free_bytes - freeBefore) < 64 * 1024, size: d?.size_bytes },
    },
    // Nothing of the release was written: no staging, no journal left, free space as it was.
    written: freeBefore - freeAfter < 64 * 1024,
    releases: readdirSync(w.paths.releases).sort(),
    self: [self.status, selfBody.error.code, existsSync(w.paths.updater.releases) ? readdirSync(w.paths.updater.releases) : "not even created"],
    journal: readdirSync(w.installDir).includes("state.json"),
    current: readlinkSync(w.paths.current),
    agent: { ...health.agent, pid: health.agent.pid === agentPid && isAlive(agentPid), uptime_s: typeof health.agent.uptime_s },
    row: { agent: row.agent, oneLine: !row.detail.includes("\n"), says: row.detail.startsWith("not enough disk space for this release: it needs ") },
  }).toEqual({
    small: { status: 200, release: tiny.id },
    refused: {
      status: 507,
      code: "insufficient_storage",
      message: `not enough disk space for this release: it needs ${d?.needed_bytes} bytes (${(d?.needed_bytes / 1e6).toFixed(1)} MB), the install dir's file system has ${d?.free_bytes} free (${(d?.free_bytes / 1e6).toFixed(1)} MB); nothing was written`,
      detail: { needed: true, free: true, size: 150 * 1024 * 1024 },
    },
    written: true,
    releases: [tiny.id],
    self: [507, "insufficient_storage", "not even created"],
    journal: false,
    current: `releases/${tiny.id}`,
    agent: { release: tiny.id, pid: true, healthy: true, uptime_s: "number" },
    row: { agent: "error", oneLine: true, says: true },
  });
  rmSync(join(w.installDir, "other-data"));
});
