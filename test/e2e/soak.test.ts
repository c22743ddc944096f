/**
 * The soak in its CI form (test/fleet/soak.ts): 300 seeded random steps
 * against one worker of the compiled binary — good full and delta pushes,
 * rollbacks, unhealthy releases, truncated, corrupt and dropped uploads,
 * hostile archives, kill -9 of the updater mid-operation — with /health and
 * /releases called throughout. Prints its report; replay a failure with
 * `bun run soak --seed N --ops 300` (or DECNET_SOAK_SEED=N here).
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { formatReport, runSoak, STEP_KINDS } from "../fleet/soak.ts";

setDefaultTimeout(300_000);

// Cheap steps weigh more than in `bun run soak`, to fit 300 steps in about two minutes here.
const CI_WEIGHTS = { full: 3, delta: 7, rollback: 8, unhealthy: 3, truncated: 18, corrupt: 8, dropped: 8, "dropped-delta": 3, hostile: 30, kill: 5 };

test("300 random steps with kill -9 leave the worker on a good release, with nothing leaked or left over", async () => {
  const seed = Number(process.env.DECNET_SOAK_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const report = await runSoak({ seed, ops: 300, minutes: 10, weights: CI_WEIGHTS });
  console.log(formatReport(report));
  expect({
    seed,
    steps: report.steps,
    everyKind: STEP_KINDS.filter((k) => !report.counts[k]),
    violations: report.violations,
  }).toEqual({ seed, steps: 300, everyKind: [], violations: [] });
});
