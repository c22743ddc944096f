/**
 * daemons/updater/logs.ts in process: the tail of a file (line count, byte
 * bound, missing file), the follow stream (appends, a truncated file read
 * again, cancel and closeAll leaving nothing running), and where each
 * source's lines are.
 */
import { expect, test } from "bun:test";
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { journalArgv, lastLines, logSource, tailFile, UpdaterLogs } from "../../src/daemons/updater/logs.ts";
import { installPaths } from "../../src/lib/paths.ts";

function tempDir(): { dir: string } & Disposable {
  const dir = mkdtempSync(join(tmpdir(), "decnet-logs-"));
  return { dir, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

const text = (b: Uint8Array) => Buffer.from(b).toString("utf8");

test("a tail is the last N whole lines, bounded in bytes; a missing file has none", () => {
  using t = tempDir();
  const f = join(t.dir, "a.log");
  writeFileSync(f, "one\ntwo\nthree\nfour\n");
  const noNewline = join(t.dir, "b.log");
  writeFileSync(noNewline, "one\ntwo\nthree");
  const long = join(t.dir, "c.log");
  writeFileSync(long, `${"x".repeat(100)}\nshort\n`);
  expect({
    two: text(tailFile(f, 2).text),
    all: text(tailFile(f, 100).text),
    size: tailFile(f, 1).size,
    unterminated: text(tailFile(noNewline, 2).text),
    // 20 bytes from the end: the partial first line is dropped.
    bounded: text(tailFile(f, 100, 12).text),
    oneLongLine: text(tailFile(long, 2, 50).text),
    missing: tailFile(join(t.dir, "none.log"), 5),
  }).toEqual({
    two: "three\nfour\n",
    all: "one\ntwo\nthree\nfour\n",
    size: 19,
    unterminated: "two\nthree",
    bounded: "three\nfour\n",
    oneLongLine: "short\n",
    missing: { text: new Uint8Array(0), size: 0, ino: 0 },
  });
  expect(text(lastLines(Buffer.from("y".repeat(30)), 3, false))).toBe("y".repeat(30));
});

test("each source's lines: spawn → agent.spawn.log and updater.log; systemd → the units' journals", () => {
  const p = installPaths("/opt/decnet");
  expect({
    spawn: [logSource({ agentSupervisor: "spawn" }, p, "agent", false), logSource({ agentSupervisor: "spawn" }, p, "updater", false)],
    systemd: [logSource({ agentSupervisor: "systemd" }, p, "agent", true), logSource({ agentSupervisor: "systemd" }, p, "updater", true)],
    argv: journalArgv("decnet-agent.service", 50, true),
  }).toEqual({
    spawn: [{ kind: "file", path: "/opt/decnet/agent.spawn.log" }, { kind: "file", path: "/opt/decnet/updater/updater.log" }],
    systemd: [{ kind: "journal", unit: "decnet-agent.service" }, { kind: "journal", unit: "decnet-updater.service" }],
    argv: ["journalctl", "-u", "decnet-agent.service", "-n", "50", "-o", "short-iso", "--no-pager", "-q", "-f"],
  });
});

test("follow: the tail, then appends; a truncated file is read from its start; the client gone, the stream is closed", async () => {
  using t = tempDir();
  const paths = installPaths(t.dir);
  writeFileSync(paths.agentSpawnLog, "old 1\nold 2\n");
  const logs = new UpdaterLogs({ agentSupervisor: "spawn" }, paths);
  const client = new AbortController();
  const res = await logs.answer({ source: "agent", lines: 1, follow: "1" }, client.signal);
  const reader = res.body!.getReader();
  const read = async () => text((await reader.read()).value!);
  const first = await read();
  appendFileSync(paths.agentSpawnLog, "new 3\n");
  const appended = await read();
  writeFileSync(paths.agentSpawnLog, "after truncation\n");
  const truncated = await read();
  const open = logs.followers;
  client.abort();
  const end = await reader.read();
  expect({ type: res.headers.get("content-type"), first, appended, truncated, open, done: end.done, left: logs.followers }).toEqual({
    type: "text/plain; charset=utf-8",
    first: "old 2\n",
    appended: "new 3\n",
    truncated: "after truncation\n",
    open: 1,
    done: true,
    left: 0,
  });
});

test("closeAll ends every follow stream (the updater stopping or re-executing), and past the limit a new one is refused", async () => {
  using t = tempDir();
  const logs = new UpdaterLogs({ agentSupervisor: "spawn" }, installPaths(t.dir));
  const streams = await Promise.all(Array.from({ length: 8 }, () => logs.answer({ source: "updater", lines: 10, follow: "1" }, new AbortController().signal)));
  const ninth = await logs.answer({ source: "updater", lines: 10, follow: "1" }, new AbortController().signal).catch((e) => ({ code: e.code, message: e.message }));
  const before = logs.followers;
  logs.closeAll();
  const ended = await Promise.all(streams.map(async (r) => (await r.body!.getReader().read()).done));
  expect({ before, ninth, ended, after: logs.followers }).toEqual({
    before: 8,
    ninth: { code: "busy", message: "8 log streams are open on this updater already; close one and try again" },
    ended: streams.map(() => true),
    after: 0,
  });
});
