/**
 * One host's push in process, against a fake worker: the row says how the
 * release travelled (full with no base, a delta against what the slot runs,
 * a full push after a refused delta, nothing when unreachable), what the
 * worker said when it rolled back, and what the self-update did.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Deltas, type HostResult, pushHost, type WorkerClient } from "../../src/core/swarm/push.ts";
import type { Host } from "../../src/core/registry.ts";
import type { Release } from "../../src/core/swarm/push.ts";
import { RemoteError } from "../../src/lib/errors.ts";
import { IndexFormatError } from "../../src/protocol/block-index.ts";
import type { SwitchResponse } from "../../src/protocol/updater.ts";

const ID = "a".repeat(64);
const BASE = "b".repeat(64);
const host: Host = { name: "w1", address: "127.0.0.1", sans: [], agent_port: 8765, updater_port: 8766, enrolled_at: "", has_updater: true, decommissioned_at: null, last_release: null, last_result: null, last_pushed_at: null };

const switched = (status: SwitchResponse["status"] = "updated"): SwitchResponse => ({ status, release: { id: ID, version: "1.0.0" }, previous: null, agent_pid: 42, transcript: null });

interface Fake {
  /** What each slot runs (its delta base). */
  runs: { agent: string | null; updater: string | null };
  /** What /health says it takes (absent: an updater before format 2). */
  formats?: number[];
  /** Answers of /update and /update-self, in order: a response or an error to throw. */
  answers: Array<SwitchResponse | RemoteError>;
  agentRelease?: string;
  unreachable?: boolean;
}

/** The fake worker, and every upload it received (slot, delta base, bytes). */
function fakeClient(f: Fake) {
  const uploads: Array<{ slot: string; delta: string | null; bytes: number; format?: number }> = [];
  const down = () => new RemoteError("w1", "unreachable", "connection refused by 127.0.0.1:8766");
  const client: WorkerClient = {
    releases: async () => {
      if (f.unreachable) throw down();
      return { current: f.runs.agent, previous: null, releases: [] };
    },
    updaterHealth: async () => {
      if (f.unreachable) throw down();
      return { status: "ok", role: "updater", version: "1", release: f.runs.updater, pid: 1, busy: null, agent: { release: null, pid: null, healthy: false }, ...(f.formats ? { delta_formats: f.formats } : {}) };
    },
    blocks: async (_e, release) => ({ release, block_size: 16384, files: {} }),
    blocksCompact: async () => ({ index: new Uint8Array(10), wire: 16 }),
    upload: async (_e, u) => {
      let bytes = 0;
      for await (const c of u.body) bytes += c.byteLength;
      u.onBytes?.(bytes, u.length);
      uploads.push({ slot: u.slot, delta: u.delta ?? null, bytes, ...(u.format ? { format: u.format } : {}) });
      const a = f.answers.shift()!;
      if (a instanceof RemoteError) throw a;
      return { result: a, bytesSent: bytes };
    },
    waitForUpdaterRelease: async () => ({}) as never,
    agentHealth: async () => ({ status: "ok", role: "agent", version: "1.0.0", release: f.agentRelease ?? ID, pid: 42 }),
  };
  return { client, uploads };
}

const dir = mkdtempSync(join(tmpdir(), "decnet-push-"));
const file = join(dir, "release.tar.gz");
writeFileSync(file, new Uint8Array(5000));
let packed = 0;
const release: Release = { manifest: { format: 1, name: "decnet", version: "1.0.0", git: { sha: "x", dirty: false }, built_at: null, target: "linux-x64", files: [], id: ID } as never, tarball: async () => (packed++, file) };
/** Deltas of 300 bytes in the format the worker takes, or none (a delta would carry most of it); `received` index bytes; the formats each call was asked for. */
const asked: number[][] = [];
const deltas = (body: Uint8Array | null, received = 0): Deltas => ({
  body: async (_base, formats) => {
    asked.push([...formats]);
    return { planned: body && { format: formats.includes(2) ? 2 : 1, body, framesWithDict: 0 }, received };
  },
});

async function push(f: Fake, o: { delta?: Deltas | null; includeSelf?: boolean } = {}) {
  const { client, uploads } = fakeClient(f);
  const row = await pushHost(host, release, { includeSelf: o.includeSelf ?? false, delta: o.delta === undefined ? deltas(new Uint8Array(300)) : o.delta, onProgress: () => {}, client, signer: null });
  const { duration_ms, ...rest } = row;
  return { row: rest as Omit<HostResult, "duration_ms">, uploads, timed: duration_ms >= 0 };
}

test("the row says how the release travelled: full with no base, a delta against the current release, --full", async () => {
  const first = await push({ runs: { agent: null, updater: null }, answers: [switched()] });
  const second = await push({ runs: { agent: BASE, updater: null }, answers: [switched()] });
  const full = await push({ runs: { agent: BASE, updater: null }, answers: [switched()] }, { delta: null });
  const tooBig = await push({ runs: { agent: BASE, updater: null }, answers: [switched()] }, { delta: deltas(null) });
  expect({
    first: [first.row.transfer, first.row.detail, first.uploads],
    second: [second.row.transfer, second.row.detail, second.row.bytes_sent],
    full: [full.row.transfer, full.row.detail],
    tooBig: tooBig.row.detail,
    self: [first.row.self, first.row.self_transfer],
  }).toEqual({
    first: [{ mode: "full", bytes: 5000, received: 0 }, `1.0.0 ${ID.slice(0, 12)}, agent pid 42, full (no release there yet)`, [{ slot: "agent", delta: null, bytes: 5000 }]],
    second: [{ mode: "delta", bytes: 300, received: 0, base: BASE, format: 1 }, `1.0.0 ${ID.slice(0, 12)}, agent pid 42, delta 0 kB against ${BASE.slice(0, 12)}`, 300],
    full: [{ mode: "full", bytes: 5000, received: 0 }, `1.0.0 ${ID.slice(0, 12)}, agent pid 42, full`],
    tooBig: `1.0.0 ${ID.slice(0, 12)}, agent pid 42, full (a delta would carry most of it)`,
    self: [null, null],
  });
});

test("a refused delta falls back to the whole release and says which code refused it", async () => {
  const p = await push({ runs: { agent: BASE, updater: null }, answers: [new RemoteError("w1", "delta_unavailable", "base file decnet has changed on disk", 412), switched()] });
  expect({ transfer: p.row.transfer, uploads: p.uploads.map((u) => u.delta), agent: p.row.agent }).toEqual({
    transfer: { mode: "full", bytes: 5000, received: 0, fallback: "delta_unavailable" },
    uploads: [BASE, null],
    agent: "updated",
  });
});

test("a block index the master cannot use (damaged or hostile) costs that host a full push, not an error", async () => {
  const bad: Deltas = { body: async () => { throw new IndexFormatError("truncated index"); } };
  const p = await push({ runs: { agent: BASE, updater: null }, formats: [1, 2], answers: [switched()] }, { delta: bad });
  expect([p.row.agent, p.row.transfer, p.row.detail.endsWith("full (its block index was unusable: truncated index)")]).toEqual(["updated", { mode: "full", bytes: 5000, received: 0, fallback: "bad_index" }, true]);
});

test("an unreachable host sends nothing; a rolled-back one quotes its agent; a wrong release from /health is an error", async () => {
  const down = await push({ runs: { agent: null, updater: null }, answers: [], unreachable: true });
  const rolled = await push({
    runs: { agent: BASE, updater: null },
    answers: [new RemoteError("w1", "rolled_back", "release aaaaaaaaaaaa was unhealthy", 409, { rolled_back: true, failed_release: ID, current: BASE, transcripts: { new: { healthy: false, release: null, pid: 1, attempts: [], log_tail: "boot\nno config\n" }, old: null } })],
  });
  const liar = await push({ runs: { agent: BASE, updater: null }, answers: [switched()], agentRelease: BASE });
  expect({
    down: [down.row.agent, down.row.transfer, down.row.bytes_sent, down.row.detail],
    rolled: [rolled.row.agent, rolled.row.transfer, rolled.row.detail],
    liar: [liar.row.agent, liar.row.detail],
  }).toEqual({
    down: ["error", null, 0, "connection refused by 127.0.0.1:8766"],
    rolled: ["rolled-back", { mode: "delta", bytes: 300, received: 0, base: BASE, format: 1 }, "release aaaaaaaaaaaa was unhealthy — agent said: no config"],
    liar: ["error", `updater said updated, but the agent reports release ${BASE.slice(0, 12)}`],
  });
});

test("--include-self: the updater's own slot gets a delta against the release it runs; unchanged when it already runs it; an error does not undo the agent", async () => {
  const updated = await push({ runs: { agent: BASE, updater: BASE }, answers: [switched(), switched()] }, { includeSelf: true });
  const unchanged = await push({ runs: { agent: BASE, updater: ID }, answers: [switched(), switched("unchanged")] }, { includeSelf: true });
  const failed = await push({ runs: { agent: BASE, updater: BASE }, answers: [switched(), new RemoteError("w1", "install_failed", "self-update preflight failed", 500)] }, { includeSelf: true });
  expect({
    updated: [updated.row.self, updated.row.self_transfer, updated.uploads.map((u) => [u.slot, u.delta]), updated.row.bytes_sent],
    unchanged: [unchanged.row.self, unchanged.row.detail.endsWith("; updater already on it")],
    failed: [failed.row.agent, failed.row.self, failed.row.detail.endsWith("; self-update: self-update preflight failed")],
  }).toEqual({
    updated: ["updated", { mode: "delta", bytes: 300, received: 0, base: BASE, format: 1 }, [["agent", BASE], ["updater", BASE]], 600],
    unchanged: ["unchanged", true],
    failed: ["updated", "error", true],
  });
});

test("format 2 only for an updater that lists it (and ?format=2 then); the worker's index bytes are counted apart from what was sent, and the detail shows the total; the tarball is packed only for a full push", async () => {
  asked.length = 0;
  packed = 0;
  const two = await push({ runs: { agent: BASE, updater: null }, formats: [1, 2], answers: [switched()] }, { delta: deltas(new Uint8Array(2000), 56_000) });
  const old = await push({ runs: { agent: BASE, updater: null }, answers: [switched()] }, { delta: deltas(new Uint8Array(3000)) });
  const deltaPacks = packed;
  const whole = await push({ runs: { agent: null, updater: null }, formats: [1, 2], answers: [switched()] });
  expect({
    asked,
    two: [two.row.transfer, two.uploads, two.row.bytes_sent, two.row.detail.endsWith(`delta 2 kB against ${BASE.slice(0, 12)} (+ 56 kB index = 58 kB)`)],
    old: [old.row.transfer?.format, old.uploads[0]!.format],
    packs: [deltaPacks, packed, whole.row.transfer?.mode],
  }).toEqual({
    asked: [[1, 2], [1]],
    two: [{ mode: "delta", bytes: 2000, received: 56_000, base: BASE, format: 2 }, [{ slot: "agent", delta: BASE, bytes: 2000, format: 2 }], 2000, true],
    old: [1, 1],
    packs: [0, 1, "full"],
  });
  rmSync(dir, { recursive: true, force: true });
});
