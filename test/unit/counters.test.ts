/**
 * The /metrics pieces in process: the exposition writer (escaping,
 * cumulative histogram), outcomes as the client sees them, counters kept
 * across a restart and started from zero when their file is damaged.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Counters, outcomeOf } from "../../src/daemons/updater/counters.ts";
import { histogram, render } from "../../src/lib/prom-text.ts";

function tempDir(): { dir: string } & Disposable {
  const dir = mkdtempSync(join(tmpdir(), "decnet-counters-"));
  return { dir, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

test("the exposition: HELP and TYPE per family, label values escaped, histogram buckets cumulative with +Inf, _sum and _count", () => {
  const text = render([
    { name: "x_info", help: "a\\b\nc", type: "gauge", samples: [{ labels: { v: 'say "hi"\\\n' }, value: 1 }] },
    { name: "x_seconds", help: "h", type: "histogram", samples: histogram([1, 5], [2, 1], 7.5, 4, { slot: "agent" }) },
  ]);
  expect(text.split("\n")).toEqual([
    "# HELP x_info a\\\\b\\nc",
    "# TYPE x_info gauge",
    'x_info{v="say \\"hi\\"\\\\\\n"} 1',
    "# HELP x_seconds h",
    "# TYPE x_seconds histogram",
    'x_seconds_bucket{slot="agent",le="1"} 2',
    'x_seconds_bucket{slot="agent",le="5"} 3',
    'x_seconds_bucket{slot="agent",le="+Inf"} 4',
    'x_seconds_sum{slot="agent"} 7.5',
    'x_seconds_count{slot="agent"} 4',
    "",
  ]);
  expect(() => render([{ name: "bad-name", help: "", type: "gauge", samples: [] }])).toThrow("bad metric name bad-name");
});

test("outcomes: updated, unchanged, rolled back, refused (what was sent) and failed (the install)", () => {
  expect([
    outcomeOf({ status: "updated" }, null),
    outcomeOf({ status: "unchanged" }, null),
    outcomeOf(null, { code: "rolled_back" }),
    outcomeOf(null, { code: "insufficient_storage" }),
    outcomeOf(null, { code: "unsigned" }),
    outcomeOf(null, { code: "install_failed" }),
    outcomeOf(null, {}),
  ]).toEqual(["updated", "unchanged", "rolled_back", "refused", "refused", "failed", "failed"]);
});

test("counters survive a restart (their file), and a damaged file starts them from zero with one warning", () => {
  using t = tempDir();
  const file = join(t.dir, "metrics.json");
  const a = new Counters(file);
  a.update("agent", "updated", 1.2);
  a.update("agent", "rolled_back", 40, true);
  a.received(1000);
  a.operatorRollback();
  a.agentRestarted();
  const b = new Counters(file);
  writeFileSync(file, "{not json");
  const warned: string[] = [];
  const c = new Counters(file, { warn: (m: string) => warned.push(m) });
  expect({ kept: b.get(), damaged: c.get(), warned: warned.length }).toEqual({
    kept: {
      format: 1,
      updates: { "agent updated": 1, "agent rolled_back": 1 },
      rollbacks: { probe: 1, operator: 1 },
      durations: { agent: { counts: [0, 0, 1, 0, 0, 0, 0, 1, 0, 0], sum: 41.2, count: 2 } },
      bytes_received: 1000,
      agent_restarts: 1,
    },
    damaged: { format: 1, updates: {}, rollbacks: {}, durations: {}, bytes_received: 0, agent_restarts: 0 },
    warned: 1,
  });
});
