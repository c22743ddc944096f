/**
 * /deploy and /teardown: store the compose file under the install dir and run
 * `<compose-bin> compose -p NAME -f FILE up -d` (or `down`).
 */
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Deployment } from "../../protocol/agent.ts";
import { writeFileAtomic } from "../../lib/atomic.ts";
import { DecnetError } from "../../lib/errors.ts";
import { ensurePrivateDir, type InstallPaths } from "../../lib/paths.ts";
import { run } from "../../lib/proc.ts";
import { timeouts } from "../../lib/timeouts.ts";

const FILE = "compose.yml";

export interface ComposeRunner {
  up(project: string, compose: string): Promise<{ stdout: string; stderr: string }>;
  down(project: string): Promise<{ stdout: string; stderr: string }>;
  list(): Deployment[];
}

export function composeRunner(paths: InstallPaths, bin: string): ComposeRunner {
  async function compose(project: string, action: string[]) {
    const file = join(paths.deployment(project), FILE);
    const r = await run([bin, "compose", "-p", project, "-f", file, ...action], { timeoutMs: timeouts.compose(), cwd: paths.root });
    if (r.spawnError || r.code !== 0) {
      const why = r.spawnError ?? (r.timedOut ? "timed out" : `exited ${r.code}`);
      throw new DecnetError("compose_failed", `${bin} compose ${action[0]} for ${project} failed: ${why}`, {
        detail: { stdout: r.stdout.slice(-8192), stderr: r.stderr.slice(-8192) },
      });
    }
    return { stdout: r.stdout, stderr: r.stderr };
  }
  return {
    async up(project, text) {
      const file = join(paths.deployment(project), FILE);
      const before = existsSync(file) ? readFileSync(file, "utf8") : null;
      ensurePrivateDir(paths.deployment(project));
      writeFileAtomic(file, text, 0o600);
      try {
        return await compose(project, ["up", "-d"]);
      } catch (e) {
        // A deploy that failed is not deployed: /status lists what was there
        // before. A first deploy's partial state (networks, containers that
        // did start) is taken down first, while its file still says what it is.
        if (before === null) {
          await compose(project, ["down"]).catch(() => null);
          rmSync(paths.deployment(project), { recursive: true, force: true });
        } else writeFileAtomic(file, before, 0o600);
        throw e;
      }
    },
    async down(project) {
      if (!existsSync(join(paths.deployment(project), FILE))) {
        throw new DecnetError("not_found", `project ${project} is not deployed`);
      }
      const out = await compose(project, ["down"]);
      rmSync(paths.deployment(project), { recursive: true, force: true });
      return out;
    },
    list() {
      if (!existsSync(paths.deployments)) return [];
      return readdirSync(paths.deployments)
        .filter((p) => existsSync(join(paths.deployment(p), FILE)))
        .sort()
        .map((project) => ({ project, deployed_at: statSync(join(paths.deployment(project), FILE)).mtime.toISOString() }));
    },
  };
}
