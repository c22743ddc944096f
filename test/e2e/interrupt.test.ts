/**
 * No operation can hold the updater: bytes after a tar's end-of-archive are
 * refused at once (2 GiB of zeros in 2 MB of gzip members), /health answering
 * meanwhile; a process a release's install check leaves behind cannot hold
 * it; and SIGTERM ends the daemon promptly in the middle of an upload or of
 * a hanging install check (ending the check too), the journal putting things
 * right on the next start.
 */
import { beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { allPids, cmdline, isAlive } from "../../src/lib/procfs.ts";
import { writeTarball } from "../../src/lib/tarball.ts";
import { release, until, type Worker } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";
import { manifest, SCRIPT, tar } from "../fixtures/tar.ts";

const fleet = useFleet({ workers: 2, start: ["w1"] });
let w: Worker;
let stalls: Worker;
beforeAll(async () => {
  w = fleet.worker("w1");
  stalls = fleet.worker("w2");
  await fleet.startUpdater(stalls, { DECNET_UPLOAD_STALL_MS: "1000" });
  expect((await fleet.push(w, (await release("v1")).file)).status).toBe(200);
}, 180_000);

test("an upload that stops sending is answered after the stall time, and releases what it held", async () => {
  const full = await Bun.file((await release("v1")).file).bytes();
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(c) {
      if (sent >= 1024 * 1024) return new Promise<void>(() => {});
      c.enqueue(full.subarray(sent, sent + 64 * 1024));
      sent += 64 * 1024;
    },
  });
  const t0 = performance.now();
  const res = await fleet.request(stalls, "updater", "/update", { method: "POST", body, duplex: "half" } as RequestInit);
  const ms = performance.now() - t0;
  const h = await fleet.health(stalls);
  expect({ status: res.status, body: await res.json(), inTime: ms > 900 && ms < 5_000, busy: h.busy, leaks: h.leaks, staging: readdirSync(stalls.paths.releases).filter((n) => n.startsWith(".staging-")) }).toEqual({
    status: 400,
    body: { error: { code: "bad_archive", message: "upload stalled: nothing received for 1 s" } },
    inTime: true,
    busy: null,
    leaks: { deleted_fds: 0 },
    staging: [],
  });
});

test("2 GiB of zeros after end-of-archive is refused in under a second, /health answering meanwhile", async () => {
  const small = gzipSync(tar([{ name: "manifest.json", data: manifest([{ path: "decnet", data: SCRIPT }]) }, { name: "decnet", data: SCRIPT, mode: 0o755 }]));
  // 32 gzip members of 64 MiB of zeros each: one stream of 2 GiB after the archive, 2 MB on the wire.
  const zeros = gzipSync(new Uint8Array(64 * 1024 * 1024), { level: 9 });
  const body = new Uint8Array(Buffer.concat([small, ...Array.from({ length: 32 }, () => zeros)]));
  const healthAnswers: number[] = [];
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const t = performance.now();
      await fleet.health(w);
      healthAnswers.push(performance.now() - t);
    }
  })();
  const t0 = performance.now();
  const r = await fleet.push(w, body);
  const ms = performance.now() - t0;
  polling = false;
  await poller;
  const h = await fleet.health(w);
  expect({ status: r.status, error: r.body.error, fast: ms < 1000, healthAnswered: healthAnswers.length > 0 && Math.max(...healthAnswers) < 1000, busy: h.busy, healthy: h.agent.healthy }).toEqual({
    status: 400,
    error: { code: "bad_archive", message: "more than 1048576 bytes of padding after the end of the archive" },
    fast: true,
    healthAnswered: true,
    busy: null,
    healthy: true,
  });
});

test("SIGTERM ends the updater promptly mid-upload; what it leaves the next start discards, and the agent runs on", async () => {
  const v1 = await release("v1");
  const full = await Bun.file((await release("v2")).file).bytes();
  const pid = fleet.pid(w, "updater");
  const agentPid = fleet.pid(w, "agent");
  // 8 MB, then nothing more: the upload holds the operation lock, staging half written.
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(c) {
      if (sent >= 8 * 1024 * 1024) return new Promise<void>(() => {});
      c.enqueue(full.subarray(sent, sent + 256 * 1024));
      sent += 256 * 1024;
    },
  });
  const upload = fleet.request(w, "updater", "/update", { method: "POST", body, duplex: "half" } as RequestInit).catch((e: Error) => e.message);
  const staging = () => readdirSync(w.paths.releases).filter((n) => n.startsWith(".staging-"));
  await until(async () => (await fleet.health(w)).busy === "update" && staging().length === 1, "the upload to be staging");
  const journal = JSON.parse(readFileSync(w.paths.stateJson, "utf8")) as { op: string; phase: string };
  const t0 = performance.now();
  process.kill(pid, "SIGTERM");
  await until(() => !isAlive(pid), "the updater to exit", 5_000, 10);
  const exitMs = performance.now() - t0;
  await upload;
  const left = { staging: staging().length, journal: existsSync(w.paths.stateJson) };
  await fleet.startUpdater(w);
  const h = await until(async () => {
    const x = await fleet.health(w);
    return x.busy === null && x.agent.healthy ? x : null;
  }, "the restarted updater to settle");
  expect({
    journal: { op: journal.op, phase: journal.phase },
    prompt: exitMs < 2000,
    left,
    after: { staging: staging(), journal: existsSync(w.paths.stateJson), agent: h.agent, leaks: h.leaks },
  }).toEqual({
    journal: { op: "update", phase: "staging" },
    prompt: true,
    // The aborted upload may unwind before the exit (no staging, no journal)
    // or not (both left, for the next start to discard): never one without the other.
    left: left.journal ? { staging: 1, journal: true } : { staging: 0, journal: false },
    after: { staging: [], journal: false, agent: { release: v1.id, pid: agentPid, healthy: true, uptime_s: expect.any(Number) }, leaks: { deleted_fds: 0 } },
  });
});

/** Processes whose argv is exactly `argv` (a fixture's unique `sleep N`). */
const running = (...argv: string[]) => allPids().filter((p) => cmdline(p).join(" ") === argv.join(" "));

test("a release whose version check leaves a process holding its output does not hold the updater", async () => {
  const forks = await release("version-forks"); // packing asks it too: the master is not held either
  const t0 = performance.now();
  const r = await fleet.push(w, forks.file);
  const ms = performance.now() - t0;
  await until(() => running("sleep", "6001").length === 0, "the forked process to be ended", 5_000);
  const h = await fleet.health(w);
  expect({ status: r.status, code: r.body.error?.code, prompt: ms < 15_000, busy: h.busy, healthy: h.agent.healthy }).toEqual({ status: 409, code: "rolled_back", prompt: true, busy: null, healthy: true });
});

test("SIGTERM during a hanging install check ends the updater and the check with it", async () => {
  // A release whose `version --json` never answers.
  const dir = mkdtempSync(join(tmpdir(), "decnet-hangs-"));
  const script = "#!/bin/sh\nexec sleep 6002\n";
  writeFileSync(join(dir, "decnet"), script, { mode: 0o755 });
  writeFileSync(join(dir, "manifest.json"), manifest([{ path: "decnet", data: script }]));
  await writeTarball(join(dir, "hangs.tar.gz"), dir, ["manifest.json", "decnet"]);
  const pid = fleet.pid(w, "updater");
  const upload = fleet.push(w, join(dir, "hangs.tar.gz")).catch((e: Error) => e.message);
  const [check] = await until(() => running("sleep", "6002"), "the install check to run");
  process.kill(pid, "SIGTERM");
  await until(() => !isAlive(pid) && !isAlive(check!), "the updater and its install check to end", 2_000, 10);
  await upload;
  rmSync(dir, { recursive: true, force: true });
  await fleet.startUpdater(w);
  const h = await until(async () => {
    const x = await fleet.health(w);
    return x.busy === null && x.agent.healthy ? x : null;
  }, "the restarted updater to settle");
  expect({ staging: readdirSync(w.paths.releases).filter((n) => n.startsWith(".staging-")), journal: existsSync(w.paths.stateJson), healthy: h.agent.healthy }).toEqual({ staging: [], journal: false, healthy: true });
});
