/**
 * The compact block index and its query (pure), the master's release cache
 * and the plan inputs read from an executable (on a temp dir).
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hashFile, planInputs } from "../../src/core/plan-input.ts";
import { ReleaseCache } from "../../src/core/release-cache.ts";
import { type BlockIndex, decodeCompactIndex, decodeIndexQuery, encodeCompactIndex, encodeIndexQuery, GROUP_BLOCKS, groupDigests, IndexFormatError, truncateDigests } from "../../src/protocol/block-index.ts";
import { BLOCK_SIZE, BlockHasher } from "../../src/protocol/delta.ts";
import { type Manifest, releaseId } from "../../src/protocol/manifest.ts";

const random = (n: number) => { const b = new Uint8Array(n); for (let o = 0; o < n; o += 65536) crypto.getRandomValues(b.subarray(o, Math.min(n, o + 65536))); return b; };
const digestsOf = (b: Uint8Array) => { const h = new BlockHasher(); h.update(b); return h.finish(); };
const id = (c: string) => c.repeat(64);

function tempDir() {
  const path = mkdtempSync(join(tmpdir(), "decnet-idx-"));
  return { path, [Symbol.dispose]: () => rmSync(path, { recursive: true, force: true }) };
}

function manifestOf(files: Record<string, Uint8Array>): Manifest {
  const list = Object.entries(files).map(([path, b]) => ({ path, mode: "0755", size: b.byteLength, sha256: new Bun.CryptoHasher("sha256").update(b).digest("hex") }));
  return { format: 1, name: "decnet", version: "1.0.0", git: { sha: "x", dirty: false }, built_at: null, target: "linux-x64", files: list, id: releaseId(list) };
}

describe("compact index", () => {
  // 5 groups and a bit: the base; the new release changes only its last group.
  const base = random(5 * GROUP_BLOCKS * BLOCK_SIZE + 3 * BLOCK_SIZE + 77);
  const next = Buffer.concat([base.subarray(0, 5 * GROUP_BLOCKS * BLOCK_SIZE), random(4 * BLOCK_SIZE)]);
  const full: BlockIndex = { release: id("a"), width: 32, files: { decnet: { size: base.byteLength, digests: digestsOf(base) } } };
  const truncated = { ...full, width: 8, files: { decnet: { size: base.byteLength, digests: truncateDigests(full.files.decnet!.digests) } } };

  test("without a query: every block at 8 bytes, decoded as sent", () => {
    const b = encodeCompactIndex(full);
    expect({ decoded: decodeCompactIndex(b), bytes: b.byteLength }).toEqual({ decoded: truncated, bytes: 4 + 1 + 32 + 1 + 1 + 6 + 8 + 1 + 324 * 8 });
  });

  test("with the master's group digests: only the differing group travels, the rest is filled from the master's own", () => {
    const mine = digestsOf(next);
    const q = decodeIndexQuery(encodeIndexQuery({ decnet: groupDigests(mine) }));
    const b = encodeCompactIndex(full, q);
    expect({ decoded: decodeCompactIndex(b, { decnet: mine }), bytes: b.byteLength }).toEqual({ decoded: truncated, bytes: 4 + 1 + 32 + 1 + 1 + 6 + 8 + 1 + 4 * 8 });
  });

  test("hostile answers and queries are refused", () => {
    const b = encodeCompactIndex(full, { decnet: groupDigests(digestsOf(next)) });
    const refuse = (f: () => unknown) => { try { f(); return "accepted"; } catch (e) { return e instanceof IndexFormatError ? "refused" : `threw ${(e as Error).message}`; } };
    const badPath = Buffer.from(encodeCompactIndex({ ...full, files: { "a.b": full.files.decnet! } }));
    badPath.set(new TextEncoder().encode("../"), 4 + 1 + 32 + 1 + 1);
    expect({
      notAsked: refuse(() => decodeCompactIndex(b)),
      short: refuse(() => decodeCompactIndex(encodeCompactIndex(full).subarray(0, 100))),
      trailing: refuse(() => decodeCompactIndex(Buffer.concat([encodeCompactIndex(full), new Uint8Array(1)]))),
      magic: refuse(() => decodeCompactIndex(new Uint8Array(64))),
      otherRelease: refuse(() => decodeCompactIndex(encodeCompactIndex(full), null, id("b"))),
      path: refuse(() => decodeCompactIndex(badPath)),
      query: refuse(() => decodeIndexQuery(Buffer.concat([encodeIndexQuery({ decnet: new Uint8Array(16) }), new Uint8Array(3)]))),
    }).toEqual({ notAsked: "refused", short: "refused", trailing: "refused", magic: "refused", otherRelease: "refused", path: "refused", query: "refused" });
  });
});

describe("release cache", () => {
  const index = (c: string): BlockIndex => ({ release: id(c), width: 32, files: { decnet: { size: 40_000, digests: random(3 * 32) } } });

  test("indexes come back at 8 bytes a digest, the least recently used are pruned, a damaged one is dropped", () => {
    using dir = tempDir();
    const cache = new ReleaseCache(dir.path, { indexes: 2, contents: 1 });
    const [a, b, c] = [index("a"), index("b"), index("c")];
    cache.putIndex(a);
    cache.putIndex(b);
    const old = new Date(Date.now() - 60_000);
    utimesSync(join(dir.path, "index", `${id("b")}.idx`), old, old);
    expect(cache.index(id("a"))?.files.decnet!.digests).toEqual(truncateDigests(a.files.decnet!.digests));
    cache.putIndex(c); // b is the least recently used
    writeFileSync(join(dir.path, "index", `${id("c")}.idx`), "garbage");
    expect({ a: cache.index(id("a")) !== null, b: cache.index(id("b")), c: cache.index(id("c")), notAnId: cache.index("../x") }).toEqual({ a: true, b: null, c: null, notAnId: null });
  });

  test("content: a copy of the files, read by range, only inside the file; pruned to the limit", () => {
    using dir = tempDir();
    const cache = new ReleaseCache(join(dir.path, "cache"), { indexes: 8, contents: 1 });
    const bytes = random(100_000);
    writeFileSync(join(dir.path, "exe"), bytes);
    const m1 = manifestOf({ decnet: bytes });
    cache.putContent(m1, { decnet: join(dir.path, "exe") });
    const r = cache.content(m1.id)!;
    const got = { range: Buffer.compare(r.read("decnet", 500, 1000)!, bytes.subarray(500, 1500)) === 0, past: r.read("decnet", 99_500, 1000), other: r.read("lib", 0, 1) };
    r.dispose();
    const bytes2 = random(50_000);
    writeFileSync(join(dir.path, "exe"), bytes2);
    const m2 = manifestOf({ decnet: bytes2 });
    const old = new Date(Date.now() - 60_000);
    utimesSync(join(dir.path, "cache", "content", m1.id), old, old);
    cache.putContent(m2, { decnet: join(dir.path, "exe") });
    expect({ ...got, first: cache.hasContent(m1.id), second: cache.hasContent(m2.id) }).toEqual({ range: true, past: null, other: null, first: false, second: true });
  });
});

describe("plan inputs from the executable", () => {
  test("one pass gives size, sha256 and the block digests; a changed file is refused (the tarball: push-release.test.ts)", async () => {
    using dir = tempDir();
    const bytes = random(3 * BLOCK_SIZE + 5);
    const exe = join(dir.path, "decnet");
    writeFileSync(exe, bytes, { mode: 0o755 });
    const h = hashFile(exe);
    const m = manifestOf({ decnet: bytes });
    const inputs = planInputs(m, { decnet: exe }, { decnet: h });
    const read = Buffer.compare(inputs.files[0]!.read(BLOCK_SIZE, 10), bytes.subarray(BLOCK_SIZE, BLOCK_SIZE + 10)) === 0;
    inputs.dispose();
    writeFileSync(exe, random(10));
    let refused = "";
    try {
      planInputs(m, { decnet: exe });
    } catch (e) {
      refused = (e as Error).message.includes("is not the decnet of release") ? "refused" : (e as Error).message;
    }
    expect({
      hashed: { size: h.size, sha256: h.sha256, digests: Buffer.from(h.digests).equals(digestsOf(bytes)) },
      read,
      refused,
    }).toEqual({
      hashed: { size: bytes.byteLength, sha256: m.files[0]!.sha256, digests: true },
      read: true,
      refused: "refused",
    });
  });
});
