/** `bun run demo`, the README's first command, keeps working: exit 0, well under a minute, nothing left behind. */
import { expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { ROOT } from "../fleet/harness.ts";

// Real daemons and 50 MB releases; set per file (a preload only reaches the first file).
setDefaultTimeout(90_000);

test("bun run demo pushes, rolls back by itself, and cleans up, in well under a minute", async () => {
  // A temp dir of its own: other fleets (other tests, other checkouts) come and go in the shared one.
  const tmp = mkdtempSync(join(tmpdir(), "decnet-demo-test-"));
  const t0 = performance.now();
  const p = Bun.spawn(["bun", "run", "demo"], { cwd: ROOT, stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1", TMPDIR: tmp } });
  const [out, , code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  const seconds = (performance.now() - t0) / 1000;
  expect({
    code,
    fast: seconds < 45,
    // Rows of the result table (HOST ADDRESS AGENT …) for the broken push.
    rolledBack: out.split("\n").filter((l) => /^w\d+\s+127\.\S+\s+rolled-back\s/.test(l)).length,
    manualRollback: /w3: rolled back to /.test(out),
    leftBehind: readdirSync(tmp).filter((n) => n.startsWith("decnet-fleet-")).length,
  }).toEqual({ code: 0, fast: true, rolledBack: 2, manualRollback: true, leftBehind: 0 });
  rmSync(tmp, { recursive: true, force: true });
});
