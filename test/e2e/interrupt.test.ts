/**
 * No operation can hold the updater: bytes after a tar's end-of-archive are
 * refused at once (2 GiB of zeros in 2 MB of gzip members), /health answering
 * meanwhile; and SIGTERM ends the daemon promptly in the middle of an upload,
 * the journal putting things right on the next start.
 */
import { beforeAll, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { isAlive } from "../../src/lib/procfs.ts";
import { release, until, type Worker } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";
import { manifest, SCRIPT, tar } from "../fixtures/tar.ts";

const fleet = useFleet({ workers: 1, start: ["w1"] });
let w: Worker;
beforeAll(async () => {
  w = fleet.worker("w1");
  expect((await fleet.push(w, (await release("v1")).file)).status).toBe(200);
}, 180_000);

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
    after: { staging: [], journal: false, agent: { release: v1.id, pid: agentPid, healthy: true }, leaks: { deleted_fds: 0 } },
  });
});
