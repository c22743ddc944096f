/**
 * A rollout's plan and budget from the flags, in process: batches and
 * budgets as host counts with exact percentage rounding (down, a batch at
 * least one host), canaries by count or name, what each row counts as, and
 * one usage line for each bad flag.
 */
import { expect, test } from "bun:test";
import { classify, overBudget, tally } from "../../src/core/rollout/budget.ts";
import { planRollout, type RolloutFlags } from "../../src/core/rollout/plan.ts";
import { parseDuration } from "../../src/core/rollout/settings.ts";
import type { HostState, RolloutHost } from "../../src/core/rollout/store.ts";
import type { HostResult } from "../../src/core/swarm/push.ts";
import { DecnetError } from "../../src/lib/errors.ts";

const hosts = (n: number) => Array.from({ length: n }, (_, i) => `w${i + 1}`);
const plan = (n: number, f: Omit<RolloutFlags, "concurrency">) => {
  const p = planRollout(hosts(n), { concurrency: 8, ...f }, (h) => /^w\d+$/.test(h));
  return { batches: p.batches.map((b) => b.join(",")), canaries: p.canaries, limits: p.settings.limits };
};
/** The usage error's line and exit code, or what came back instead. */
const refusal = (fn: () => unknown) => {
  try {
    return { returned: fn() };
  } catch (e) {
    return e instanceof DecnetError ? { exit: e.exitCode, line: `${e.message}${e.hint ? ` — ${e.hint}` : ""}` } : { threw: String(e) };
  }
};

test("--batch 25% --max-failures 10% over 8 hosts: batches of 2, and 10% of 8 (0.8) rounds down to 0 allowed", () => {
  expect(plan(8, { batch: "25%", maxFailures: "10%" })).toEqual({ batches: ["w1,w2", "w3,w4", "w5,w6", "w7,w8"], canaries: false, limits: { failures: 0, unreachable: null } });
});

test("percentages are of all the rollout's hosts, canaries included, rounded down exactly (never through floating point)", () => {
  expect({
    canaryThenQuarters: plan(8, { canary: "1", batch: "25%" }),
    thirtyOfTen: plan(10, { batch: "30%" }).batches,
    eighthOfEight: plan(8, { batch: "12.5%", maxFailures: "12.5%" }),
    onePercentOfEight: plan(8, { batch: "1%" }).batches.length,
    // 0.29 × 100 is 28.999999999999996 in floating point; in hundredths it is 29.
    twentyNineOfHundred: [plan(100, { batch: "29%" }).batches[0]!.split(",").length, plan(100, { maxFailures: "29%" }).limits.failures],
    budgets: ["20%", "25%", "0%", "100%"].map((p) => plan(8, { maxFailures: p, maxUnreachable: p }).limits),
    whole: plan(8, { batch: "100%" }).batches,
  }).toEqual({
    canaryThenQuarters: { batches: ["w1", "w2,w3", "w4,w5", "w6,w7", "w8"], canaries: true, limits: { failures: 0, unreachable: null } },
    thirtyOfTen: ["w1,w2,w3", "w4,w5,w6", "w7,w8,w9", "w10"],
    eighthOfEight: { batches: hosts(8), canaries: false, limits: { failures: 1, unreachable: null } },
    onePercentOfEight: 8,
    twentyNineOfHundred: [29, 29],
    budgets: [{ failures: 1, unreachable: 1 }, { failures: 2, unreachable: 2 }, { failures: 0, unreachable: 0 }, { failures: 8, unreachable: 8 }],
    whole: [hosts(8).join(",")],
  });
});

test("a plain update is one batch with no budget; --canary or --batch makes any release failure halt unless told otherwise", () => {
  expect({
    plain: plan(3, {}),
    batch: plan(3, { batch: "2" }),
    budgetOnly: plan(3, { maxFailures: "1" }),
    unreachableOnly: plan(3, { maxUnreachable: "0" }),
    named: plan(4, { canary: "w3,w1", batch: "1", maxFailures: "2" }),
  }).toEqual({
    plain: { batches: ["w1,w2,w3"], canaries: false, limits: { failures: null, unreachable: null } },
    batch: { batches: ["w1,w2", "w3"], canaries: false, limits: { failures: 0, unreachable: null } },
    budgetOnly: { batches: ["w1,w2,w3"], canaries: false, limits: { failures: 1, unreachable: null } },
    unreachableOnly: { batches: ["w1,w2,w3"], canaries: false, limits: { failures: null, unreachable: 0 } },
    named: { batches: ["w3,w1", "w2", "w4"], canaries: true, limits: { failures: 2, unreachable: null } },
  });
});

test("bad flags are usage errors (exit 2) of one line each", () => {
  const bad = (f: Omit<RolloutFlags, "concurrency">, n = 4) => refusal(() => planRollout(hosts(n), { concurrency: 8, ...f }, (h) => h !== "ghost"));
  expect({
    batch0: bad({ batch: "0" }),
    batch0pct: bad({ batch: "0%" }),
    batch150: bad({ batch: "150%" }),
    negative: bad({ maxFailures: "-1" }),
    word: bad({ maxUnreachable: "some" }),
    pause: bad({ pause: "5parsecs" }),
    longPause: bad({ pause: "25h" }),
    ghost: bad({ canary: "ghost" }),
    notSelected: refusal(() => planRollout(["w1", "w2"], { concurrency: 8, canary: "w3" }, () => true)),
    tooMany: bad({ canary: "5" }),
    zeroCanary: bad({ canary: "0" }),
    haltRollbackAlone: bad({ haltRollback: true }),
  }).toEqual({
    batch0: { exit: 2, line: "--batch 0: a batch needs at least one host" },
    batch0pct: { exit: 2, line: "--batch 0%: a batch needs at least one host" },
    batch150: { exit: 2, line: "--batch 150%: a percentage is at most 100%" },
    negative: { exit: 2, line: '--max-failures takes a whole number of hosts or a percentage (N or P%), not "-1"' },
    word: { exit: 2, line: '--max-unreachable takes a whole number of hosts or a percentage (N or P%), not "some"' },
    pause: { exit: 2, line: '--pause takes a duration such as 30s, 5m or 1h (units ms, s, m, h), not "5parsecs"' },
    longPause: { exit: 2, line: "--pause 25h: at most 24h" },
    ghost: { exit: 2, line: "unknown --canary host: ghost — see `decnet swarm list`" },
    notSelected: { exit: 2, line: "--canary w3: not among the hosts this update selects" },
    tooMany: { exit: 2, line: "--canary 5: only 4 host(s) are selected" },
    zeroCanary: { exit: 2, line: "--canary 0: give at least one host, or leave --canary out" },
    haltRollbackAlone: { exit: 2, line: "--halt-rollback needs a rollout that can halt — add --canary, --batch, --max-failures or --max-unreachable" },
  });
});

test("--pause durations", () => {
  expect(["500ms", "30s", "1.5m", "2h", "0s", "24h"].map((d) => parseDuration("--pause", d))).toEqual([500, 30_000, 90_000, 7_200_000, 0, 86_400_000]);
});

const row = (agent: HostResult["agent"], error_code: string | null, self: HostResult["self"] = null) =>
  ({ host: "w1", agent, self, error_code }) as HostResult;

test("what a row counts as: release failures, unreachable (not the release's fault), interrupted", () => {
  expect({
    updated: classify(row("updated", null)),
    selfUnchanged: classify(row("updated", null, "unchanged")),
    rolledBack: classify(row("rolled-back", "rolled_back")),
    installCheck: classify(row("error", "install_failed")),
    unhealthyAfterSwitch: classify(row("error", "unhealthy")),
    unsigned: classify(row("error", "unsigned")),
    selfRolledBack: classify(row("updated", "self_rolled_back", "rolled-back")),
    refused: classify(row("error", "unreachable")),
    timedOut: classify(row("error", "timeout")),
    handshake: classify(row("error", "handshake")),
    busy: classify(row("error", "busy")),
    aborted: classify(row("error", "aborted")),
  }).toEqual({
    updated: "updated", selfUnchanged: "updated", rolledBack: "failed", installCheck: "failed", unhealthyAfterSwitch: "failed", unsigned: "failed",
    selfRolledBack: "failed", refused: "unreachable", timedOut: "unreachable", handshake: "unreachable", busy: "unreachable", aborted: "interrupted",
  });
});

test("the budget halts past its count, counting only runs from budget_from on", () => {
  const h = (state: HostState, run: number | null): RolloutHost => ({ host: "x", batch: 0, state, run, started_at: null, finished_at: null, result: null, note: null });
  const hosts = [h("failed", 1), h("failed", 1), h("unreachable", 2), h("updated", 2), h("pending", null), h("running", 2), h("reverted", 1)];
  expect({
    tally: tally(hosts),
    within: overBudget(hosts, { failures: 2, unreachable: 1 }, 1),
    failures: overBudget(hosts, { failures: 1, unreachable: null }, 1),
    unreachable: overBudget(hosts, { failures: null, unreachable: 0 }, 1),
    afresh: overBudget(hosts, { failures: 0, unreachable: null }, 2),
    none: overBudget(hosts, { failures: null, unreachable: null }, 1),
  }).toEqual({
    tally: { updated: 1, failed: 2, unreachable: 1, reverted: 1, pending: 2 },
    within: null,
    failures: "2 release failures, more than the 1 allowed",
    unreachable: "1 host unreachable, more than the 0 allowed",
    afresh: null,
    none: null,
  });
});
