/**
 * The daemons' log lines: timestamped in a file, `<N>`-prefixed without a
 * timestamp when stderr is the journal (and only then: JOURNAL_STREAM must
 * name stderr itself).
 */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatEntry } from "../../src/lib/log.ts";

const date = new Date("2026-12-01T10:00:00.000Z");

test("journal lines carry the syslog priority of their type on every line; file lines a timestamp", () => {
  const entry = (type: string, text: string, journal: boolean) => formatEntry({ date, role: "updater", type, text, journal });
  expect({
    file: entry("warn", "slow", false),
    warn: entry("warn", "release abc unhealthy", true),
    error: entry("error", "could not restart\n  at x", true),
    info: entry("info", "updated", true),
    success: entry("success", "done", true),
    debug: entry("debug", "detail", true),
    fatal: entry("fatal", "gone", true),
  }).toEqual({
    file: "2026-12-01T10:00:00.000Z updater warn slow\n",
    warn: "<4>warn release abc unhealthy\n",
    error: "<3>error could not restart\n<3>  at x\n",
    info: "<6>info updated\n",
    success: "<6>success done\n",
    debug: "<7>debug detail\n",
    fatal: "<2>fatal gone\n",
  });
});

test("stderr counts as the journal only when JOURNAL_STREAM names its device and inode", async () => {
  const dir = mkdtempSync(join(tmpdir(), "decnet-log-"));
  const script = join(dir, "probe.ts");
  writeFileSync(script, `import { stderrIsJournal } from ${JSON.stringify(join(import.meta.dir, "../../src/lib/log.ts"))};\nprocess.stdout.write(String(stderrIsJournal()));\n`);
  const errFile = join(dir, "stderr");
  writeFileSync(errFile, "");
  const st = statSync(errFile, { bigint: true });
  const run = async (stream: string | undefined) => {
    const { JOURNAL_STREAM: _, ...env } = process.env;
    const p = Bun.spawn(["bun", script], { env: stream === undefined ? env : { ...env, JOURNAL_STREAM: stream }, stdout: "pipe", stderr: Bun.file(errFile) });
    const out = await new Response(p.stdout).text();
    await p.exited;
    return out;
  };
  const results = {
    same: await run(`${st.dev}:${st.ino}`),
    otherInode: await run(`${st.dev}:${st.ino + 1n}`),
    unset: await run(undefined),
    garbage: await run("journal"),
  };
  rmSync(dir, { recursive: true, force: true });
  expect(results).toEqual({ same: "true", otherInode: "false", unset: "false", garbage: "false" });
});

test("an error in a log line is its name, code, message and hint: no stack or bundled source unless DECNET_DEBUG is set", async () => {
  const { show } = await import("../../src/lib/log.ts");
  const { DecnetError } = await import("../../src/lib/errors.ts");
  const e = new DecnetError("install_failed", "install check failed", { hint: "push it again" });
  const plain = new TypeError("x is not a function");
  const before = process.env.DECNET_DEBUG;
  delete process.env.DECNET_DEBUG;
  const quiet = [show(e), show(plain)];
  process.env.DECNET_DEBUG = "1";
  const debug = show(plain);
  if (before === undefined) delete process.env.DECNET_DEBUG;
  else process.env.DECNET_DEBUG = before;
  expect({ quiet, debugHasStack: debug.includes("\n    at ") }).toEqual({
    quiet: ["DecnetError [install_failed]: install check failed — push it again", "TypeError: x is not a function"],
    debugHasStack: true,
  });
});
