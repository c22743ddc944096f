/**
 * The agent's install sequence in process, on a temp install dir, with a
 * fake supervisor and probe: what each path out (healthy, unhealthy, first
 * install, failed check, same release, a supervisor that cannot start) leaves
 * in the slots, the history, the journal and staging — and what recovery
 * does with a journal a crash left behind.
 */
import { expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgentOps, type AgentControl } from "../../src/daemons/updater/ops.ts";
import { stageUpload } from "../../src/daemons/updater/stage.ts";
import { writeJournal } from "../../src/daemons/updater/journal.ts";
import { buildInfo } from "../../src/lib/build-info.ts";
import { installPaths } from "../../src/lib/paths.ts";
import type { ProbeTranscript } from "../../src/protocol/common.ts";
import { manifest, tgz } from "../fixtures/tar.ts";

const quiet = { info() {}, warn() {}, error() {}, debug() {}, success() {} } as never;

const ids = new Map<Uint8Array, string>();
/** A release whose `decnet` is a script answering `version --json` with `version`. */
function releaseTgz(version: string, exitCode = 0): Uint8Array {
  const data = `#!/bin/sh\necho '{"version":"${version}"}'\nexit ${exitCode}\n`;
  const m = manifest([{ path: "decnet", data }], { version });
  const t = tgz([{ name: "manifest.json", data: m }, { name: "decnet", data, mode: 0o755 }]);
  ids.set(t, JSON.parse(m).id);
  return t;
}
const idOf = (t: Uint8Array) => ids.get(t)!;

interface World {
  ops: AgentOps;
  calls: string[];
  dir: string;
  paths: ReturnType<typeof installPaths>;
  /** The next probe answers healthy (true) or not, in order. */
  probes: boolean[];
  stage(t: Uint8Array): () => ReturnType<typeof stageUpload>;
  slots(): { current: string | null; previous: string | null };
  status(): Record<string, string>;
  [Symbol.dispose](): void;
}

function world(o: { restartFails?: boolean; healthy?: { release: string; pid: number } } = {}): World {
  const dir = mkdtempSync(join(tmpdir(), "decnet-ops-"));
  const paths = installPaths(dir);
  const calls: string[] = [];
  const probes: boolean[] = [];
  let pid = 1000;
  const sup: AgentControl = {
    async restart() {
      calls.push(`restart ${readlinkSync(paths.current).slice(-6)}`);
      if (o.restartFails) throw new Error("cannot start");
      return { pid: ++pid, logOffset: 0 };
    },
    async stop() {
      calls.push("stop");
      return [];
    },
    agents: () => [],
    killUnconfirmed: () => {},
    logSince: () => "agent said goodbye\n",
  };
  const probe = async (p: { release: string | null; pid: number | null }): Promise<ProbeTranscript> => {
    const healthy = probes.shift() ?? true;
    return { healthy, release: healthy ? p.release : null, pid: p.pid, attempts: [{ at_ms: 1, ok: healthy, note: healthy ? "healthy" : "refused" }], ...(healthy ? {} : { log_tail: "agent said goodbye\n" }) };
  };
  const ops = new AgentOps({ cfg: { keepReleases: 3 }, paths, sup, log: quiet, health: async () => (o.healthy ? { status: "ok", role: "agent", version: "1.0.0", ...o.healthy } : null), probe });
  const link = (p: string) => (existsSync(p) ? readlinkSync(p).replace("releases/", "") : null);
  return {
    ops,
    calls,
    dir,
    paths,
    probes,
    stage: (t) => () => stageUpload(paths, new Blob([t]).stream(), { maxBytes: 1 << 20, contentLength: t.byteLength }),
    slots: () => ({ current: link(paths.current), previous: link(paths.previous) }),
    status: () => Object.fromEntries(Object.entries(JSON.parse(readFileSync(paths.history, "utf8")) as Record<string, { status: string }>).map(([k, v]) => [k, v.status])),
    [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }),
  };
}

const leftovers = (w: World) => ({ journal: existsSync(w.paths.stateJson), staging: readdirSync(w.paths.releases).filter((n) => n.startsWith(".staging")) });

test("healthy updates flip the slots, mark each good and report what the install did", async () => {
  using w = world();
  const [a, b] = [releaseTgz("1.0.0"), releaseTgz("1.0.1")];
  const ra = await w.ops.update(w.stage(a));
  const rb = await w.ops.update(w.stage(b));
  expect({
    a: [ra.status, ra.release, ra.previous, ra.install?.mode, ra.install?.bytes_received],
    b: [rb.status, rb.release.id, rb.previous],
    slots: w.slots(),
    status: w.status(),
    calls: w.calls,
    ...leftovers(w),
  }).toEqual({
    a: ["updated", { id: idOf(a), version: "1.0.0" }, null, "full", a.byteLength],
    b: ["updated", idOf(b), idOf(a)],
    slots: { current: idOf(b), previous: idOf(a) },
    status: { [idOf(a)]: "good", [idOf(b)]: "good" },
    calls: [`restart ${idOf(a).slice(-6)}`, `restart ${idOf(b).slice(-6)}`],
    journal: false,
    staging: [],
  });
});

test("an unhealthy release is flipped back, restarted on the old one, marked failed and answered 409 with both transcripts", async () => {
  using w = world();
  const [a, b] = [releaseTgz("1.0.0"), releaseTgz("1.0.1")];
  await w.ops.update(w.stage(a));
  w.probes.push(false, true);
  const err = await w.ops.update(w.stage(b)).catch((e) => e);
  expect({
    code: err.code,
    detail: [err.detail.rolled_back, err.detail.failed_release, err.detail.current, err.detail.transcripts.new.healthy, err.detail.transcripts.old.healthy, err.detail.transcripts.new.log_tail],
    slots: w.slots(),
    status: w.status(),
    calls: w.calls.slice(1),
    ...leftovers(w),
  }).toEqual({
    code: "rolled_back",
    detail: [true, idOf(b), idOf(a), false, true, "agent said goodbye\n"],
    slots: { current: idOf(a), previous: null },
    status: { [idOf(a)]: "good", [idOf(b)]: "failed" },
    calls: [`restart ${idOf(b).slice(-6)}`, `restart ${idOf(a).slice(-6)}`],
    journal: false,
    staging: [],
  });
});

test("a first install that is unhealthy leaves no current and no agent, and keeps the release", async () => {
  using w = world();
  const a = releaseTgz("1.0.0");
  w.probes.push(false);
  const err = await w.ops.update(w.stage(a)).catch((e) => e);
  expect({ code: err.code, rolledBack: err.detail.rolled_back, slots: w.slots(), kept: w.ops.set.has(idOf(a)), calls: w.calls, ...leftovers(w) }).toEqual({
    code: "rolled_back", rolledBack: false, slots: { current: null, previous: null }, kept: true, calls: [`restart ${idOf(a).slice(-6)}`, "stop"], journal: false, staging: [],
  });
});

test("a release whose install check fails changes nothing: 500, no staging, no journal, no restart", async () => {
  using w = world();
  const a = releaseTgz("1.0.0");
  await w.ops.update(w.stage(a));
  const err = await w.ops.update(w.stage(releaseTgz("1.0.1", 3))).catch((e) => e);
  expect({ code: err.code, slots: w.slots(), calls: w.calls.length, released: w.ops.set.ids(), ...leftovers(w) }).toEqual({
    code: "install_failed", slots: { current: idOf(a), previous: null }, calls: 1, released: [idOf(a)], journal: false, staging: [],
  });
});

test("the same release again is unchanged while its agent answers healthy for it", async () => {
  const a = releaseTgz("1.0.0");
  using w = world({ healthy: { release: idOf(a), pid: process.pid } });
  await w.ops.update(w.stage(a));
  const again = await w.ops.update(w.stage(a));
  expect({ status: again.status, pid: again.agent_pid, calls: w.calls.length, ...leftovers(w) }).toEqual({ status: "unchanged", pid: process.pid, calls: 1, journal: false, staging: [] });
});

test("when the supervisor cannot start the new agent, the switch is undone, the release not blamed, and the error is the answer", async () => {
  using w = world({ restartFails: true });
  const a = releaseTgz("1.0.0");
  const err = await w.ops.update(w.stage(a)).catch((e) => e);
  expect({ message: err.message, slots: w.slots(), status: w.status(), ...leftovers(w) }).toEqual({
    message: "cannot start", slots: { current: null, previous: null }, status: { [idOf(a)]: "unknown" }, journal: false, staging: [],
  });
});

test("recovery: a switch the journal shows unconfirmed is undone, staging discarded, an unreadable journal moved aside", async () => {
  using w = world();
  const [a, b] = [releaseTgz("1.0.0"), releaseTgz("1.0.1")];
  await w.ops.update(w.stage(a));
  await w.ops.update(w.stage(b));
  // As if the updater died mid-probe of b after switching from a.
  writeJournal(w.paths, { op: "update", phase: "probing", from: idOf(a), prev: null, target: idOf(b), pid: null, started_at: "x" });
  w.ops.set.flip(idOf(b), idOf(a));
  const undone = w.ops.recoverJournal();
  const afterUndo = { slots: w.slots(), status: w.status()[idOf(b)] };
  writeJournal(w.paths, { op: "update", phase: "staging", from: idOf(a), prev: null, target: null, pid: null, started_at: "x" });
  const discarded = w.ops.recoverJournal();
  writeFileSync(w.paths.stateJson, "");
  const damaged = w.ops.recoverJournal();
  expect({
    undone,
    afterUndo,
    discarded,
    damaged: damaged?.startsWith("state.json could not be read; moved it to"),
    aside: readdirSync(w.dir).filter((n) => n.startsWith("state.json.damaged-")).length,
    slots: w.slots(),
    ...leftovers(w),
  }).toEqual({
    undone: `recovered from an interrupted update (probing): current is back on ${idOf(a).slice(0, 12)}`,
    afterUndo: { slots: { current: idOf(a), previous: null }, status: "failed" },
    discarded: "recovered from an interrupted update (staging): current is unchanged",
    damaged: true,
    aside: 1,
    slots: { current: idOf(a), previous: null },
    journal: false,
    staging: [],
  });
});

test("a rollback onto a release an interrupted push left marked failed, healthy now, marks it good", async () => {
  using w = world();
  const [a, b] = [releaseTgz("1.0.0"), releaseTgz("1.0.1")];
  await w.ops.update(w.stage(a));
  await w.ops.update(w.stage(b));
  // b → a pushed again, the updater killed after the switch: recovery puts b back and marks a failed.
  writeJournal(w.paths, { op: "update", phase: "switched", from: idOf(b), prev: idOf(a), target: idOf(a), pid: null, started_at: "x" });
  w.ops.set.flip(idOf(a), idOf(b));
  w.ops.recoverJournal();
  const before = { slots: w.slots(), status: w.status() };
  const r = await w.ops.rollback();
  expect({ before, status: r.status, after: { slots: w.slots(), status: w.status() } }).toEqual({
    before: { slots: { current: idOf(b), previous: idOf(a) }, status: { [idOf(a)]: "failed", [idOf(b)]: "good" } },
    status: "rolled-back",
    after: { slots: { current: idOf(a), previous: idOf(b) }, status: { [idOf(a)]: "good", [idOf(b)]: "good" } },
  });
});

test("a release built for another target changes nothing: 400 wrong_target before its code runs, no staging, no journal, no restart", async () => {
  using w = world();
  const a = releaseTgz("1.0.0");
  await w.ops.update(w.stage(a));
  const other = buildInfo().target === "linux-x64" ? "linux-arm64" : "linux-x64";
  // Its script would leave a mark if the install check ran it.
  const mark = join(w.dir, "ran");
  const data = `#!/bin/sh\ntouch ${mark}\necho '{"version":"1.0.1"}'\n`;
  const t = tgz([{ name: "manifest.json", data: manifest([{ path: "decnet", data }], { version: "1.0.1", target: other }) }, { name: "decnet", data, mode: 0o755 }]);
  const err = await w.ops.update(w.stage(t)).catch((e) => e);
  expect({ code: err.code, ran: existsSync(mark), slots: w.slots(), calls: w.calls.length, released: w.ops.set.ids(), ...leftovers(w) }).toEqual({
    code: "wrong_target", ran: false, slots: { current: idOf(a), previous: null }, calls: 1, released: [idOf(a)], journal: false, staging: [],
  });
});
