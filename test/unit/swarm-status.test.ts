/**
 * The master's side of status and logs in process: a row from a /health
 * answer and the registry (drift, certificate days, unreachable), and a log
 * stream split into lines (UTF-8 across chunks, an endless line cut).
 */
import { expect, test } from "bun:test";
import { statusRow } from "../../src/core/swarm/status.ts";
import { eachLine } from "../../src/core/swarm/logs.ts";
import type { Host } from "../../src/core/registry.ts";
import { RemoteError } from "../../src/lib/errors.ts";
import type { UpdaterHealth } from "../../src/protocol/updater.ts";

const host = (last: string | null): Host => ({
  name: "w1", address: "10.0.0.1", sans: [], agent_port: 8765, updater_port: 8766, enrolled_at: "2026-12-01T00:00:00Z", has_updater: true,
  decommissioned_at: null, last_release: last, last_result: last ? "update: updated" : null, last_pushed_at: last ? "2026-12-01T01:00:00Z" : null,
});
const health = (release: string | null, extra: Partial<UpdaterHealth> = {}): UpdaterHealth => ({
  status: "ok", role: "updater", version: "1.0.0", release: "u".repeat(64), pid: 10, busy: null,
  agent: { release, pid: 11, healthy: release !== null, uptime_s: 42 }, ...extra,
});
const now = new Date("2026-12-02T00:00:00Z");

test("a row: drift against the registry's last release, days left on each certificate, unreachable with its reason", () => {
  const a = "a".repeat(64);
  const b = "b".repeat(64);
  const certs = { certificates: { updater: "2026-12-20T00:00:00.000Z", agent: "2027-03-01T12:00:00.000Z" }, disk: { free_bytes: 5, size_bytes: 10 } };
  const same = statusRow(host(a), { health: health(a, certs) }, 12.4, now);
  const drifted = statusRow(host(a), { health: health(b) }, 3, now);
  const never = statusRow(host(null), { health: health(null, { busy: "update" }) }, 3, now);
  const down = statusRow(host(a), { error: new RemoteError("w1", "unreachable", "connection refused by 10.0.0.1:8766", 0, undefined, "start one") }, 3000, now);
  expect({
    same: [same.drift, same.healthy, same.certificates, same.disk, same.agent?.uptime_s, same.ms, same.last_push],
    drifted: [drifted.drift, drifted.certificates],
    never: [never.drift, never.healthy, never.busy],
    down,
  }).toEqual({
    same: [false, true, { updater: { not_after: "2026-12-20T00:00:00.000Z", days_left: 18 }, agent: { not_after: "2027-03-01T12:00:00.000Z", days_left: 89 } }, { free_bytes: 5, size_bytes: 10 }, 42, 12, { result: "update: updated", at: "2026-12-01T01:00:00Z" }],
    // An older updater reports no certificates: unknown, not zero days.
    drifted: [true, null],
    never: [null, false, "update"],
    down: {
      host: "w1", address: "10.0.0.1", reachable: false, error: { code: "unreachable", message: "connection refused by 10.0.0.1:8766", hint: "start one" },
      updater: null, agent: null, last_release: a, drift: null, busy: null, certificates: null, disk: null,
      last_push: { result: "update: updated", at: "2026-12-01T01:00:00Z" }, healthy: false, ms: 3000,
    },
  });
});

test("log lines: split across chunks (UTF-8 too), an endless line cut once and the rest of it skipped, a byte bound", async () => {
  const enc = new TextEncoder();
  const euro = enc.encode("€");
  const chunks = [enc.encode("one\ntw"), enc.encode("o\nthr"), euro.subarray(0, 1), euro.subarray(1), enc.encode(`ee\n${"x".repeat(25)}`), enc.encode(`${"x".repeat(10)}\nlast`)];
  const lines: string[] = [];
  const body = () => new ReadableStream<Uint8Array>({ start(c) { for (const x of chunks) c.enqueue(x); c.close(); } });
  await eachLine(body(), (l) => lines.push(l), { maxLine: 20, maxBytes: 1000, tooMuch: () => new Error("too much") });
  const bounded = await eachLine(body(), () => {}, { maxLine: 20, maxBytes: 10, tooMuch: () => new Error("too much") }).catch((e: Error) => e.message);
  expect({ lines, bounded }).toEqual({ lines: ["one", "two", "thr€ee", `${"x".repeat(20)} … (line cut at 20 characters)`, "last"], bounded: "too much" });
});
