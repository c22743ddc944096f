/**
 * `bun run soak [--seed N] [--ops K] [--minutes M] [--weight KIND=N …]`: the soak-and-chaos run
 * (test/fleet/soak.ts) for as long as asked; prints the seed, the count of
 * each kind of step, the figures and their bounds, and exits 1 on any
 * violation. The same seed and count replay the same sequence of steps.
 */
import { parseArgs } from "node:util";
import { formatReport, runSoak, STEP_KINDS, type StepKind } from "../test/fleet/soak.ts";

const { values } = parseArgs({
  options: {
    seed: { type: "string" },
    ops: { type: "string", default: "2000" },
    minutes: { type: "string", default: "120" },
    /** KIND=N, repeatable: a step kind's weight (e.g. kill=0 for one updater life over the whole run). */
    weight: { type: "string", multiple: true, default: [] },
  },
});
const weights: Partial<Record<StepKind, number>> = {};
for (const w of values.weight) {
  const [k, n] = w.split("=");
  if (!(STEP_KINDS as readonly string[]).includes(k!) || !(Number(n) >= 0)) {
    process.stderr.write(`--weight ${w}: want KIND=N with KIND one of ${STEP_KINDS.join(", ")}\n`);
    process.exit(2);
  }
  weights[k as StepKind] = Number(n);
}
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
const ops = Number(values.ops);
const minutes = Number(values.minutes);
if (!Number.isInteger(seed) || !(ops > 0) || !(minutes > 0)) {
  process.stderr.write("usage: bun run soak [--seed N] [--ops K] [--minutes M] [--weight KIND=N …]\n");
  process.exit(2);
}
process.stderr.write(`soak: seed ${seed}, at most ${ops} steps or ${minutes} minutes\n`);
const report = await runSoak({ seed, ops, minutes, weights, log: (l) => process.stderr.write(`soak ${new Date().toISOString().slice(11, 19)}: ${l}\n`) });
process.stdout.write(`${formatReport(report)}\n`);
process.exit(report.violations.length ? 1 : 0);
