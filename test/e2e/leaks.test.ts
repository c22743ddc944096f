/**
 * A stream of broken uploads costs the updater nothing: 65 of them against
 * the compiled binary (a real ~50 MB release truncated at 40 offsets from
 * 300 B to 20 MB, corrupted at 20 places, 5 connections dropped mid-body)
 * leave 0 fds on deleted files, the updater's fd count and RSS flat, no
 * staging, the worker unchanged, and a good push afterwards works.
 */
import { beforeAll, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { release, until, type Worker } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";
import { deletedFds } from "../../src/lib/fd-audit.ts";

const fleet = useFleet({ workers: 1, start: ["w1"] });
let w: Worker;
beforeAll(async () => {
  w = fleet.worker("w1");
  expect((await fleet.push(w, (await release("v1")).file)).status).toBe(200);
}, 180_000);

/** What the updater process holds: fds, resident MB, fds on deleted files under the install dir. */
function holds(pid: number) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return {
    fds: readdirSync(`/proc/${pid}/fd`).length,
    rssMb: Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024,
    deleted: deletedFds(w.installDir, pid).length,
  };
}

/** `n` offsets spread evenly on a log scale over [lo, hi]. */
const logSpaced = (n: number, lo: number, hi: number) => Array.from({ length: n }, (_, i) => Math.round(lo * (hi / lo) ** (i / (n - 1))));

/** Sends the first `cut` bytes of `data` and drops the connection. */
async function dropAfter(data: Uint8Array, cut: number): Promise<void> {
  const ctl = new AbortController();
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      if (sent >= cut) return void ctl.abort();
      c.enqueue(data.subarray(sent, Math.min(cut, sent + 256 * 1024)));
      sent = Math.min(cut, sent + 256 * 1024);
    },
  });
  await fleet.request(w, "updater", "/update", { method: "POST", body, duplex: "half", signal: ctl.signal } as RequestInit).catch(() => null);
}

test("65 broken uploads leave no fd on a deleted file, fds and RSS flat, and a good push then works", async () => {
  const v2 = await release("v2");
  const full = await Bun.file(v2.file).bytes();
  const pid = fleet.pid(w, "updater");
  const idle = async () => until(async () => (await fleet.health(w)).busy === null && !readdirSync(w.paths.releases).some((n) => n.startsWith(".staging")), "the updater to be idle");
  // Warm-up: the first uploads grow Bun's heap and TLS buffers once.
  for (const cut of [1 << 20, 8 << 20]) await fleet.push(w, full.subarray(0, cut));
  const before = holds(pid);

  const statuses: Record<string, number> = {};
  const count = (k: string) => (statuses[k] = (statuses[k] ?? 0) + 1);
  for (const cut of logSpaced(40, 300, 20_000_000)) {
    const r = await fleet.push(w, full.subarray(0, cut));
    count(`truncated ${r.status} ${r.body.error?.code}`);
  }
  for (const at of logSpaced(20, 1024, 20_000_000)) {
    const bad = full.slice(0, Math.min(full.byteLength, at + 4 * 1024 * 1024));
    bad.fill(0x41, at, at + 64);
    const r = await fleet.push(w, bad);
    count(`corrupt ${r.status} ${r.body.error?.code}`);
  }
  for (const cut of logSpaced(5, 64 * 1024, 20_000_000)) {
    await dropAfter(full, cut);
    await idle();
    count("dropped");
  }
  await idle();
  const after = holds(pid);
  const health = await fleet.health(w);
  const good = await fleet.push(w, v2.file);
  console.log(`updater pid ${pid}: before ${JSON.stringify(before)}, after 65 broken uploads ${JSON.stringify(after)}`);
  expect({
    statuses,
    deleted: after.deleted,
    leaks: health.leaks,
    fdsFlat: after.fds <= before.fds + 2,
    rssFlat: after.rssMb <= before.rssMb + 48,
    samePid: fleet.pid(w, "updater"),
    good: [good.status, good.body.release?.id],
    agent: (await fleet.health(w)).agent.release,
  }).toEqual({
    // Every truncation says so; a corruption is found in the gzip stream or by a digest.
    statuses: { "truncated 400 bad_archive": 40, "corrupt 400 bad_archive": 20, dropped: 5 },
    deleted: 0,
    leaks: { deleted_fds: 0 },
    fdsFlat: true,
    rssFlat: true,
    samePid: pid,
    good: [200, v2.id],
    agent: v2.id,
  });
}, 120_000);
