/**
 * The staging scope, one test per path out of an operation — success,
 * refusal, client gone, stalled upload, exception — each checked for what
 * it released: the scope holds nothing, no fd of this process is open under
 * the install dir, the upload body was cancelled (or read to its end), and
 * the staging dir is gone unless the release completed.
 */
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, openSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { stageUpload } from "../../src/daemons/updater/stage.ts";
import { bad, type Held, plainChunks, stage, type Staging } from "../../src/daemons/updater/staging.ts";
import { installPaths } from "../../src/lib/paths.ts";
import { manifest, SCRIPT, tar, tgz } from "../fixtures/tar.ts";

/** fds of this process on anything under `dir`, deleted or not. */
const fdsUnder = (dir: string) =>
  readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir);
    } catch {
      return false;
    }
  }).length;

/**
 * An upload body: `data` in 4 KiB chunks, then (with `hang`) nothing more
 * until it is cancelled — as a client that stops sending. Records whether
 * the reader cancelled it and how much was read.
 */
function body(data: Uint8Array, hang = false) {
  let sent = 0;
  const state = { cancelled: false, sent: 0 };
  let release: () => void = () => {};
  const stream = new ReadableStream<Uint8Array>({
    async pull(c) {
      if (sent < data.byteLength) {
        c.enqueue(data.subarray(sent, sent + 4096));
        sent += 4096;
        state.sent = Math.min(sent, data.byteLength);
        return;
      }
      if (!hang) return c.close();
      await new Promise<void>((r) => (release = r));
    },
    cancel() {
      state.cancelled = true;
      release();
    },
  });
  return { stream, state };
}

const release = tgz([{ name: "manifest.json", data: manifest([{ path: "decnet", data: SCRIPT }]) }, { name: "decnet", data: SCRIPT, mode: 0o755 }]);
// A valid release big enough that a refusal or a cut stops reading long before the end.
const bigExe = Buffer.from(new Uint8Array(3 << 20).map((_, i) => (i * 2654435761) >>> 24)).toString("base64");
const big = new Uint8Array(gzipSync(tar([{ name: "manifest.json", data: manifest([{ path: "decnet", data: bigExe }]) }, { name: "decnet", data: bigExe, mode: 0o755 }])));

let dir = "";
afterEach(() => {
  delete process.env.DECNET_UPLOAD_STALL_MS;
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Runs `stage()` with a body and a fill function that opens a file and reads
 * the body through the scope; returns how it ended and what was left.
 */
async function run(o: { data: Uint8Array; hang?: boolean; signal?: AbortSignal; fill: (s: Staging, plain: AsyncIterator<Uint8Array>) => Promise<void> }) {
  dir = mkdtempSync(join(tmpdir(), "decnet-staging-"));
  const paths = installPaths(dir);
  const b = body(o.data, o.hang);
  let scope: Staging | null = null;
  let outcome: string;
  try {
    await stage(paths, { maxBytes: 1 << 30, contentLength: null, signal: o.signal }, "archive", async (s) => {
      scope = s;
      s.own(openSync(join(s.dir, "decnet"), "w", 0o600));
      await o.fill(s, plainChunks(s, b.stream, { maxBytes: 1 << 30, contentLength: null, signal: o.signal }, { n: 0 }, 1 << 30, "archive"));
    });
    outcome = "completed";
  } catch (e) {
    outcome = `${(e as { code?: string }).code}: ${(e as Error).message}`;
  }
  const s = scope as Staging | null;
  return {
    outcome,
    held: s?.held() ?? null,
    fdsUnderInstallDir: fdsUnder(dir),
    staging: readdirSync(paths.releases).filter((n) => n.startsWith(".staging")).length,
    body: b.state.cancelled ? "cancelled" : b.state.sent === o.data.byteLength ? "read to the end" : "left open",
  };
}

const drain = async (plain: AsyncIterator<Uint8Array>) => {
  while (!(await plain.next()).done);
};
const released: Held = { fds: 0, cleanups: 0 };

test("success: the release stays in staging, everything else is released", async () => {
  const r = await run({
    data: release,
    fill: async (s, plain) => {
      await drain(plain);
      writeFileSync(join(s.dir, "decnet"), SCRIPT);
      s.complete(JSON.parse(manifest([{ path: "decnet", data: SCRIPT }])));
    },
  });
  expect(r).toEqual({ outcome: "completed", held: released, fdsUnderInstallDir: 0, staging: 1, body: "read to the end" });
});

test("refusal: reading stops where the refusal is, the body is cancelled, staging removed", async () => {
  const r = await run({
    data: big,
    fill: async (_, plain) => {
      await plain.next();
      throw bad("refused: something");
    },
  });
  expect(r).toEqual({ outcome: "bad_archive: refused: something", held: released, fdsUnderInstallDir: 0, staging: 0, body: "cancelled" });
});

test("client gone: the request's abort ends the read at once, and releases everything", async () => {
  const ctl = new AbortController();
  const r = await run({
    data: release.subarray(0, 100),
    hang: true,
    signal: ctl.signal,
    fill: async (_, plain) => {
      setTimeout(() => ctl.abort(), 20);
      await drain(plain);
    },
  });
  expect(r).toEqual({ outcome: "bad_archive: upload ended early: the client disconnected", held: released, fdsUnderInstallDir: 0, staging: 0, body: "cancelled" });
});

test("timeout: a body that stops sending is dropped after the stall time, and releases everything", async () => {
  process.env.DECNET_UPLOAD_STALL_MS = "150";
  const t0 = performance.now();
  const r = await run({ data: release.subarray(0, 100), hang: true, fill: (_, plain) => drain(plain) });
  expect({ ...r, ms: performance.now() - t0 < 2_000 }).toEqual({ outcome: "bad_archive: upload stalled: nothing received for 0.15 s", held: released, fdsUnderInstallDir: 0, staging: 0, body: "cancelled", ms: true });
});

test("exception: an unexpected error is a bad archive to the client, and still releases everything", async () => {
  const r = await run({
    data: big,
    fill: async (_, plain) => {
      await plain.next();
      throw new TypeError("a bug");
    },
  });
  expect(r).toEqual({ outcome: "bad_archive: corrupt or truncated archive: a bug", held: released, fdsUnderInstallDir: 0, staging: 0, body: "cancelled" });
});

test("the real gate on each path leaves no fd under the install dir and no staging", async () => {
  dir = mkdtempSync(join(tmpdir(), "decnet-staging-"));
  const paths = installPaths(dir);
  const ctl = new AbortController();
  const outcomes: string[] = [];
  const cases: Array<[Uint8Array, boolean, AbortSignal | undefined]> = [
    [release, false, undefined],
    [tgz([{ name: "manifest.json", data: manifest([{ path: "decnet", data: SCRIPT }]) }, { name: "decnet", data: SCRIPT.replace("6", "7"), mode: 0o755 }]), false, undefined],
    [big.subarray(0, big.byteLength >> 1), false, undefined],
    [big.subarray(0, big.byteLength >> 1), true, ctl.signal],
  ];
  for (const [data, hang, signal] of cases) {
    if (signal) setTimeout(() => ctl.abort(), 20);
    const b = body(data, hang);
    outcomes.push(
      await stageUpload(paths, b.stream, { maxBytes: 1 << 30, contentLength: null, signal }).then(
        (s) => {
          rmSync(s.dir, { recursive: true });
          return "staged";
        },
        (e) => (e as Error).message.split(":")[0]!,
      ),
    );
  }
  expect({ outcomes, fds: fdsUnder(dir), staging: readdirSync(paths.releases).filter((n) => n.startsWith(".staging")) }).toEqual({
    outcomes: ["staged", "sha256 mismatch for decnet", "truncated archive", "upload ended early"],
    fds: 0,
    staging: [],
  });
});
