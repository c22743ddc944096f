/**
 * Delta pushes: the first push is full, the next sends only the blocks the
 * worker lacks, --full forces the whole release, a worker that cannot rebuild
 * gets the whole release automatically (and the row says so), a pruned
 * release is rewritten in place by the next delta (only where it provably
 * holds the base's bytes), and hostile delta bodies are refused like hostile
 * tarballs.
 */
import { beforeAll, expect, test } from "bun:test";
import { appendFileSync, existsSync, linkSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { release, until, type Worker } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";
import { manifest, SCRIPT, sha256 } from "../fixtures/tar.ts";

const fleet = useFleet({ workers: 2, start: ["w1"] });
let w: Worker;
beforeAll(() => {
  w = fleet.worker("w1");
});

async function push(file: string, extra: string[] = [], host = "w1") {
  const r = await fleet.update(["--host", host, "--artifact", file, ...extra]);
  const h = r.row();
  return { code: r.code, agent: h.agent, transfer: h.transfer, install: h.install, bytes: h.bytes_sent };
}

const updaterLog = () => readFileSync(w.paths.updater.log, "utf8");

test("first push full, second a delta of the changed blocks, --full sends everything", async () => {
  const v1 = await release("v1");
  const v2 = await release("v2");
  const size1 = Bun.file(v1.file).size;
  const size2 = Bun.file(v2.file).size;
  const first = await push(v1.file);
  const second = await push(v2.file);
  const agent = (await fleet.health(w)).agent.release;
  const full = await push(v1.file, ["--full"]);
  expect({
    first: [first.code, first.agent, first.transfer],
    second: [second.code, second.agent, second.transfer?.mode, second.transfer?.format, second.transfer?.base, second.bytes < size2 * 0.02, second.bytes === second.transfer?.bytes, second.transfer?.received, agent === v2.id],
    // The binaries differ only near their end: the updater resumed hashing there.
    resumedMostOfIt: second.install!.bytes_resumed > 0.9 * statSync(`${w.paths.release(v2.id)}/decnet`).size,
    full: [full.code, full.agent, full.transfer],
  }).toEqual({
    first: [0, "updated", { mode: "full", bytes: size1, received: 0 }],
    // This master pushed v1: its index came from the master's cache, nothing was asked of the worker.
    second: [0, "updated", "delta", 2, v1.id, true, true, 0, true],
    resumedMostOfIt: true,
    full: [0, "updated", { mode: "full", bytes: size1, received: 0 }],
  });
});

/**
 * Flips one byte of the current release's executable on disk, as a faulty
 * disk would; returns the repair.
 */
function damageCurrent(at: number): () => void {
  const base = readlinkSync(w.paths.current).replace("releases/", "");
  const exe = `${w.paths.release(base)}/decnet`;
  const good = readFileSync(exe);
  const bytes = Buffer.from(good);
  bytes[at] = bytes[at]! ^ 0xff;
  // The agent runs from it (ETXTBSY on write): swap files in by rename.
  const swapIn = (b: Uint8Array) => {
    writeFileSync(`${exe}.swap`, b, { mode: 0o755 });
    renameSync(`${exe}.swap`, exe);
  };
  swapIn(bytes);
  return () => swapIn(good);
}

test("a worker that cannot rebuild from the delta gets the whole release, and the row says so", async () => {
  const [v1, v2] = [await release("v1"), await release("v2")];
  // In the unchanged prefix the updater resumes after: its crc32s catch it.
  let repair = damageCurrent(1000);
  const prefix = await push(v2.file);
  repair();
  // After a restart there are no resume points: the start-up rehash reports
  // the damage, and the delta's whole-file sha256 catches it.
  repair = damageCurrent(1000);
  process.kill(fleet.pid(w, "updater"), "SIGTERM");
  await until(() => !existsSync(w.paths.updater.pid), "the updater to stop");
  const logBefore = updaterLog().length;
  await fleet.startUpdater(w);
  await until(() => updaterLog().slice(logBefore).includes("has files no longer matching its manifest: decnet"), "the start-up rehash");
  const rehashed = await push(v1.file);
  repair();
  expect({
    // crc32s of the prefix catch it: the base cannot serve.
    prefix: [prefix.code, prefix.agent, prefix.transfer],
    // The whole-file sha256 catches it: the rebuilt release is refused.
    rehashed: [rehashed.code, rehashed.agent, rehashed.transfer],
  }).toEqual({
    prefix: [0, "updated", { mode: "full", bytes: Bun.file(v2.file).size, received: 0, fallback: "delta_unavailable" }],
    rehashed: [0, "updated", { mode: "full", bytes: Bun.file(v1.file).size, received: 0, fallback: "bad_archive" }],
  });
});

test("pushing a kept release again replaces a copy damaged on disk", async () => {
  const [v1, v2] = [await release("v1"), await release("v2")];
  const current = readlinkSync(w.paths.current).replace("releases/", "");
  const other = current === v1.id ? v2 : v1;
  const exe = `${w.paths.release(other.id)}/decnet`;
  const want = JSON.parse(readFileSync(`${w.paths.release(other.id)}/manifest.json`, "utf8")).files[0].sha256;
  const bytes = readFileSync(exe);
  bytes[1000] = bytes[1000]! ^ 0xff;
  writeFileSync(exe, bytes); // not running: nothing holds it
  const damaged = sha256(readFileSync(exe)) !== want;
  const r = await push(other.file);
  expect([damaged, r.code, r.agent, sha256(readFileSync(exe)) === want, (await fleet.health(w)).agent.release === other.id]).toEqual([true, 0, "updated", true, true]);
});

test("a pruned release is kept as a spare and rewritten in place, only where it holds the base's bytes", async () => {
  const w2 = fleet.worker("w2");
  // keep 1: each update past the second prunes one release, which becomes the spare.
  await fleet.startUpdater(w2, { DECNET_KEEP_RELEASES: "1" });
  const [v1, v2, v3, v4] = [await release("v1"), await release("v2"), await release("v3"), await release("v4")];
  const spare = () => (existsSync(w2.paths.spare) ? { id: JSON.parse(readFileSync(join(w2.paths.spare, "manifest.json"), "utf8")).id as string, size: statSync(join(w2.paths.spare, "decnet")).size } : null);
  /** Pushes to w2: the row, what the updater logged, and whether the installed file is exactly the manifest's. */
  const step = async (r: { file: string; id: string }) => {
    const row = await push(r.file, [], "w2");
    const exe = join(w2.paths.release(r.id), "decnet");
    const m = JSON.parse(readFileSync(join(w2.paths.release(r.id), "manifest.json"), "utf8"));
    return {
      ok: [row.code, row.agent, row.transfer?.mode, (await fleet.health(w2)).agent.release === r.id],
      intact: sha256(readFileSync(exe)) === m.files[0].sha256,
      size: statSync(exe).size,
      kept: row.install?.bytes_in_place ?? -1,
      resumed: row.install?.bytes_resumed ?? -1,
    };
  };
  await push(v1.file, [], "w2");
  await push(v2.file, [], "w2");
  const noSpareYet = await step(v3); // prunes v1: the spare
  const spare1 = spare();
  const listed = (await fleet.releases(w2)).releases.map((r) => r.id);

  // Another build's runtime is the same bytes as the base's: rewritten in place.
  const inPlace = await step(v4); // prunes v2
  // A spare longer than the new file (builds here differ by less than a
  // page, so lengthen it on disk): cut to size.
  const spareExe = join(w2.paths.spare, "decnet");
  appendFileSync(spareExe, Buffer.alloc(100_000, 0x5a));
  const spare2 = spare();
  const shorter = await step(v1); // prunes v3

  // A byte of the spare flipped on disk inside the shared prefix: that MiB is
  // copied from the base, the rest stays in place.
  const bytes = readFileSync(spareExe);
  bytes[5 * 2 ** 20 + 1000] = bytes[5 * 2 ** 20 + 1000]! ^ 0xff;
  writeFileSync(spareExe, bytes);
  const damaged = await step(v2); // prunes v4

  // A spare with another name (a hard link) is never written through.
  const outside = mkdtempSync(join(tmpdir(), "decnet-spare-"));
  const other = join(outside, "other");
  linkSync(spareExe, other);
  const otherBefore = sha256(readFileSync(other));
  const linked = await step(v3);
  const otherAfter = sha256(readFileSync(other));
  rmSync(outside, { recursive: true, force: true });

  const mostOf = (r: { kept: number; size: number }) => r.kept > 0.9 * r.size;
  expect({
    noSpareYet: [noSpareYet.ok, noSpareYet.intact, noSpareYet.kept],
    spare1: spare1?.id,
    spareNotListed: !listed.includes(v1.id) && listed.length === 2,
    inPlace: [inPlace.ok, inPlace.intact, mostOf(inPlace)],
    shorter: [spare2?.id, spare2!.size > shorter.size, shorter.ok, shorter.intact, mostOf(shorter)],
    damaged: [damaged.ok, damaged.intact, mostOf(damaged), damaged.kept < damaged.resumed],
    linked: [linked.ok, linked.intact, linked.kept, otherAfter === otherBefore],
  }).toEqual({
    noSpareYet: [[0, "updated", "delta", true], true, 0],
    spare1: v1.id,
    spareNotListed: true,
    inPlace: [[0, "updated", "delta", true], true, true],
    shorter: [v2.id, true, [0, "updated", "delta", true], true, true],
    damaged: [[0, "updated", "delta", true], true, true, true],
    linked: [[0, "updated", "delta", true], true, 0, true],
  });
});

/** Raw delta bodies for the hostile cases. */
function delta(header: unknown, literal = new Uint8Array()): Uint8Array {
  return new Uint8Array(gzipSync(Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), literal])));
}

test("hostile delta bodies are refused with nothing changed", async () => {
  const current = readlinkSync(w.paths.current).replace("releases/", "");
  const m = JSON.parse(manifest([{ path: "decnet", data: SCRIPT }]));
  const h = (patch: Record<string, unknown>) => ({ format: 1, base: current, block_size: 16384, manifest: m, ops: { decnet: [["data", SCRIPT.length]] }, ...patch });
  const lit = new TextEncoder().encode(SCRIPT);
  const cases: Array<[string, Uint8Array, string, number]> = [
    ["copy past the base's end", delta(h({ ops: { decnet: [["copy", "decnet", 10_000_000, 1]] } })), "bad_archive", 400],
    ["ops for an unlisted file", delta(h({ ops: { decnet: [["data", SCRIPT.length]], extra: [["data", 1]] } }), lit), "bad_archive", 400],
    ["absurd sizes", delta(h({ ops: { decnet: [["data", 2 ** 40]] } })), "bad_archive", 400],
    ["a truncated literal", delta(h({}), lit.subarray(0, 10)), "bad_archive", 400],
    ["trailing bytes", delta(h({}), Buffer.concat([lit, Buffer.from("junk")])), "bad_archive", 400],
    ["a bad block hash (wrong literal)", delta(h({}), new TextEncoder().encode(SCRIPT.replace("6.6.6", "6.6.7"))), "bad_archive", 400],
    ["a release id mismatch", delta(h({ manifest: { ...m, id: sha256("x") } }), lit), "bad_archive", 400],
    ["not JSON", new Uint8Array(gzipSync("{{{\n")), "bad_archive", 400],
    ["not gzip", new TextEncoder().encode("plain"), "bad_archive", 400],
  ];
  const before = { current: readlinkSync(w.paths.current), releases: readdirSync(w.paths.releases).sort() };
  const results = [];
  for (const [name, body] of cases) {
    const res = await fleet.request(w, "updater", `/update?delta=${current}`, { method: "POST", body });
    results.push([name, (await res.json() as { error: { code: string } }).error.code, res.status]);
  }
  const missingBase = await fleet.request(w, "updater", `/update?delta=${sha256("gone")}`, { method: "POST", body: delta(h({ base: sha256("gone") })) });
  expect(results).toEqual(cases.map(([name, , code, status]) => [name, code, status]));
  expect([missingBase.status, (await missingBase.json() as { error: { code: string } }).error.code]).toEqual([412, "delta_unavailable"]);
  expect({ current: readlinkSync(w.paths.current), releases: readdirSync(w.paths.releases).sort(), staging: existsSync(w.paths.staging("x")) }).toEqual({ ...before, staging: false });
});
