/**
 * Delta pushes: the first push is full, the next sends only the blocks the
 * worker lacks, --full forces the whole release, a worker that cannot rebuild
 * gets the whole release automatically (and the row says so), and hostile
 * delta bodies are refused like hostile tarballs.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, readlinkSync, renameSync, statSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { Fleet, release, until, type Worker } from "../fleet/harness.ts";
import { manifest, SCRIPT, sha256 } from "../fixtures/tar.ts";

// Real daemons and 50 MB releases; set per file (a preload only reaches the first file).
setDefaultTimeout(90_000);

let fleet: Fleet;
let w: Worker;
beforeAll(async () => {
  fleet = await Fleet.create({ workers: 1 });
  w = fleet.worker("w1");
  await fleet.startUpdater(w);
}, 180_000);
afterAll(() => fleet[Symbol.asyncDispose]());

async function push(file: string, extra: string[] = []) {
  const r = await fleet.cli(["swarm", "update", "--host", "w1", "--artifact", file, "--json", ...extra]);
  const h = JSON.parse(r.stdout).hosts[0] as { agent: string; detail: string; bytes_sent: number };
  return { code: r.code, agent: h.agent, detail: h.detail, bytes: h.bytes_sent };
}

const updaterLog = () => readFileSync(w.paths.updater.log, "utf8");

test("first push full, second a delta of the changed blocks, --full sends everything", async () => {
  const v1 = await release("v1");
  const v2 = await release("v2");
  const size1 = Bun.file(v1.file).size;
  const size2 = Bun.file(v2.file).size;
  const first = await push(v1.file);
  const logBefore = updaterLog().length;
  const second = await push(v2.file);
  // The binaries differ only near their end: the updater resumed hashing there.
  const resumed = /resumed hashing after (\d+) MiB/.exec(updaterLog().slice(logBefore));
  const agent = (await fleet.health(w)).agent.release;
  const full = await push(v1.file, ["--full"]);
  expect({
    first: [first.code, first.agent, first.bytes === size1, first.detail.endsWith("full (no release there yet)")],
    second: [second.code, second.agent, second.bytes < size2 * 0.02, /delta \d+ kB against [0-9a-f]{12}$/.test(second.detail), agent === v2.id],
    resumedMostOfIt: Number(resumed?.[1]) * 2 ** 20 > 0.9 * statSync(`${w.paths.release(v2.id)}/decnet`).size,
    full: [full.code, full.agent, full.bytes === size1, full.detail.endsWith(", full")],
  }).toEqual({ first: [0, "updated", true, true], second: [0, "updated", true, true, true], resumedMostOfIt: true, full: [0, "updated", true, true] });
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
  process.kill(Number(readFileSync(w.paths.updater.pid, "utf8")), "SIGTERM");
  await until(() => !existsSync(w.paths.updater.pid), "the updater to stop");
  const logBefore = updaterLog().length;
  await fleet.startUpdater(w);
  await until(() => updaterLog().slice(logBefore).includes("has files no longer matching its manifest: decnet"), "the start-up rehash");
  const rehashed = await push(v1.file);
  repair();
  expect({
    prefix: [prefix.code, prefix.agent, prefix.bytes === Bun.file(v2.file).size, /full \(delta refused: base file decnet has changed on disk since it was installed/.test(prefix.detail)],
    rehashed: [rehashed.code, rehashed.agent, rehashed.bytes === Bun.file(v1.file).size, /full \(delta refused: sha256 mismatch for decnet/.test(rehashed.detail)],
  }).toEqual({ prefix: [0, "updated", true, true], rehashed: [0, "updated", true, true] });
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
