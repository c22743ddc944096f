/**
 * Every hostile or broken upload of DESIGN §5 gets a 4xx with the error body,
 * writes nothing outside staging, leaves no staging, installs no setuid file,
 * and leaves the worker exactly as it was.
 */
import { beforeAll, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { release, until, type Worker } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";
import { hostileArchives } from "../fixtures/hostile-archives.ts";

const fleet = useFleet({ workers: 2, start: ["w1"] });
let w: Worker;
let small: Worker;
beforeAll(async () => {
  w = fleet.worker("w1");
  small = fleet.worker("w2");
  await fleet.startUpdater(small, { DECNET_MAX_UPLOAD_BYTES: String(1024 * 1024) });
  expect((await fleet.push(w, (await release("v1")).file)).status).toBe(200);
}, 180_000);

/** Everything an upload could change: the tree, the slots, the agent. */
function snapshot(x: Worker) {
  const link = (p: string) => (existsSync(p) ? readlinkSync(p) : null);
  return {
    top: readdirSync(x.installDir).filter((n) => !n.endsWith(".log")).sort(),
    releases: existsSync(x.paths.releases) ? readdirSync(x.paths.releases).sort() : [],
    current: link(x.paths.current),
    previous: link(x.paths.previous),
    agentPid: existsSync(x.paths.agentPid) ? readFileSync(x.paths.agentPid, "utf8") : null,
  };
}

const cases = hostileArchives;

test.each(Object.keys(cases))("an upload with %s is refused with nothing changed", async (name) => {
  const c = cases[name]!;
  const before = snapshot(w);
  const r = await fleet.push(w, c.body());
  expect({ status: r.status, code: r.body.error?.code, matches: c.message.test(r.body.error?.message ?? "") }).toEqual({ status: c.status, code: "bad_archive", matches: true });
  expect(snapshot(w)).toEqual(before);
  expect(existsSync(join(w.installDir, "evil")) || existsSync(join(w.paths.releases, "evil")) || existsSync("/tmp/decnet-evil")).toBe(false);
  const h = await fleet.health(w);
  expect({ busy: h.busy, healthy: h.agent.healthy }).toEqual({ busy: null, healthy: true });
});

test("a body over the size limit gets 413 and the error body", async () => {
  const before = snapshot(small);
  const r = await fleet.push(small, (await release("v1")).file);
  expect({ status: r.status, code: r.body.error?.code }).toEqual({ status: 413, code: "too_large" });
  expect(snapshot(small)).toEqual(before);
});

test("a chunked body over the size limit (no content-length) gets 413", async () => {
  const before = snapshot(small);
  // A real release, streamed with no content-length: the limit is counted, not declared.
  const body = Bun.file((await release("v1")).file).stream();
  const res = await fleet.request(small, "updater", "/update", { method: "POST", body, duplex: "half" } as RequestInit);
  expect({ status: res.status, code: JSON.parse(await res.text()).error.code }).toEqual({ status: 413, code: "too_large" });
  expect(snapshot(small)).toEqual(before);
});

test("a connection dropped mid-upload leaves no staging and the worker unchanged", async () => {
  const before = snapshot(w);
  const full = await Bun.file((await release("v2")).file).bytes();
  const ctl = new AbortController();
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(c) {
      if (sent >= 4 * 1024 * 1024) {
        await Bun.sleep(50);
        ctl.abort();
        return;
      }
      c.enqueue(full.subarray(sent, sent + 256 * 1024));
      sent += 256 * 1024;
    },
  });
  await fleet.request(w, "updater", "/update", { method: "POST", body, duplex: "half", signal: ctl.signal } as RequestInit).catch(() => null);
  await until(async () => (await fleet.health(w)).busy === null && !readdirSync(w.paths.releases).some((n) => n.startsWith(".staging-")), "the updater to drop the upload");
  expect(snapshot(w)).toEqual(before);
});

test("a kept release changed on disk is never run again: rollback to it refused, the worker stays on its healthy release; pushing it again repairs it", async () => {
  const [v1, v2] = [await release("v1"), await release("v2")];
  expect((await fleet.push(w, v2.file)).status).toBe(200); // current v2, previous v1
  const exe = join(w.paths.release(v1.id), "decnet");
  const { chmodSync, writeFileSync: write } = await import("node:fs");
  const good = readFileSync(exe);
  const pid = fleet.pid(w, "agent");
  const attempt = async () => {
    const res = await fleet.request(w, "updater", "/rollback", { method: "POST" });
    return { status: res.status, code: ((await res.json()) as { error?: { code: string } }).error?.code };
  };
  // Its bytes changed (as a local user could have, had it been writable)...
  const bytes = Buffer.from(good);
  bytes[bytes.length - 100] = bytes[bytes.length - 100]! ^ 0xff;
  write(exe, bytes);
  chmodSync(exe, 0o755);
  const changed = await attempt();
  // ...or only its mode.
  write(exe, good);
  chmodSync(exe, 0o777);
  const writable = await attempt();
  const status = (await fleet.releases(w)).releases.find((r) => r.id === v1.id)?.status;
  const health = await fleet.health(w);
  const current = readlinkSync(w.paths.current);
  // The same release pushed again replaces the damaged copy; rollback to it then works.
  expect((await fleet.push(w, v1.file)).status).toBe(200);
  expect((await fleet.push(w, v2.file)).status).toBe(200);
  const after = await attempt();
  expect({ changed, writable, status, stayed: [health.agent.release, health.agent.pid === pid, current], after }).toEqual({
    changed: { status: 409, code: "release_damaged" },
    writable: { status: 409, code: "release_damaged" },
    status: "damaged",
    stayed: [v2.id, true, `releases/${v2.id}`],
    after: { status: 200, code: undefined },
  });
});
