/**
 * daemons/updater/disk-room.ts in process: what a release needs (blocks,
 * index, reserve, the spare's file counted as in place), the 507 and its
 * numbers, and the read-ahead: it finds a tarball's manifest or a delta's
 * header, hands on exactly the bytes it was given, and stays bounded on a
 * gzip bomb.
 */
import { expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync, zstdCompressSync } from "node:zlib";
import { bytesNeeded, gunzipPrefix, peekRelease, requireRoom, RESERVE_BYTES, roomForDelta, roomForDelta2, roomForRelease } from "../../src/daemons/updater/disk-room.ts";
import { writeTarball } from "../../src/lib/tarball.ts";
import { installPaths } from "../../src/lib/paths.ts";
import { manifestFor } from "../../src/protocol/manifest.ts";

function tempDir(): { dir: string } & Disposable {
  const dir = mkdtempSync(join(tmpdir(), "decnet-room-"));
  return { dir, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

const manifest = (files: Array<{ path: string; size: number }>) =>
  manifestFor({ version: "1.0.0", git: { sha: "x", dirty: false }, target: "linux-x64" }, files.map((f) => ({ ...f, mode: "0755", sha256: "0".repeat(64) })));

/** A stream of `bytes` in chunks of `chunk`. */
function chunked(bytes: Uint8Array, chunk: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(ctl) {
      if (at >= bytes.length) return ctl.close();
      ctl.enqueue(bytes.slice(at, at + chunk));
      at += chunk;
    },
  });
}

test("a release needs its files in whole blocks, their block index and the reserve; a file the spare holds needs only its growth", () => {
  const m = manifest([{ path: "decnet", size: 110_000_000 }, { path: "extra", size: 10 }]);
  const index = (size: number) => Math.ceil((Math.ceil((Math.ceil(size / 16384) * 32 * 4) / 3) + 256) / 4096) * 4096;
  expect({
    full: bytesNeeded(m, 4096),
    spare: bytesNeeded(m, 4096, (p) => (p === "decnet" ? 109_000_000 : 0)),
    spareLarger: bytesNeeded(m, 4096, (p) => (p === "decnet" ? 200_000_000 : 0)),
  }).toEqual({
    full: RESERVE_BYTES + Math.ceil(110_000_000 / 4096) * 4096 + 4096 + index(110_000_000) + index(10),
    spare: RESERVE_BYTES + Math.ceil(1_000_000 / 4096) * 4096 + 4096 + index(110_000_000) + index(10),
    spareLarger: RESERVE_BYTES + 4096 + index(110_000_000) + index(10),
  });
});

test("too little room is 507 insufficient_storage with the bytes needed and free", () => {
  using t = tempDir();
  const s = statfsSync(t.dir);
  const free = s.bavail * s.bsize;
  const need = free + 1e12;
  let e: any;
  try {
    requireRoom(t.dir, need);
  } catch (x) {
    e = x;
  }
  requireRoom(t.dir, 1); // room enough: no throw
  expect({ code: e.code, says: e.message.startsWith(`not enough disk space for this release: it needs ${need} bytes`), detail: { needed: e.detail.needed_bytes, free: Math.abs(e.detail.free_bytes - free) < 1e8 } }).toEqual({
    code: "insufficient_storage",
    says: true,
    detail: { needed: need, free: true },
  });
});

test("the read-ahead finds a tarball's manifest and hands on every byte unchanged, whatever the chunking", async () => {
  using t = tempDir();
  const m = manifest([{ path: "decnet", size: 300_000 }]);
  writeFileSync(join(t.dir, "manifest.json"), JSON.stringify(m));
  writeFileSync(join(t.dir, "decnet"), Buffer.alloc(300_000, 7));
  chmodSync(join(t.dir, "decnet"), 0o755);
  const file = join(t.dir, "r.tar.gz");
  await writeTarball(file, t.dir, ["manifest.json", "decnet"]);
  const bytes = new Uint8Array(await Bun.file(file).arrayBuffer());
  const paths = installPaths(join(t.dir, "install")).updater;
  const out: Array<[string | undefined, boolean]> = [];
  for (const chunk of [1, 100, 4096, 1 << 20]) {
    const o = { maxBytes: 1 << 30, contentLength: null };
    const p = await peekRelease(chunked(bytes, chunk), o);
    const same = (b: ArrayBuffer) => Buffer.compare(Buffer.from(b), Buffer.from(bytes)) === 0;
    out.push([p.found?.id, same(await new Response(p.body).arrayBuffer())]);
    // And through the check itself (room enough here), the same bytes.
    if (!same(await new Response(await roomForRelease(paths, chunked(bytes, chunk), o)).arrayBuffer())) out.push(["changed", false]);
  }
  expect(out).toEqual([1, 100, 4096, 1 << 20].map(() => [m.id, true]));
});

test("the read-ahead finds a delta's header and asks about the spare per file with that file's ops", async () => {
  using t = tempDir();
  const m = manifest([{ path: "decnet", size: 100 }]);
  const header = { format: 1, base: "a".repeat(64), block_size: 16384, manifest: m, ops: { decnet: [["data", 100]] } };
  const bytes = gzipSync(Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), Buffer.alloc(100, 1)]));
  const asked: unknown[] = [];
  const body = await roomForDelta(installPaths(t.dir), chunked(bytes, 7), { maxBytes: 1 << 30, contentLength: null }, (path, ops) => {
    asked.push([path, ops]);
    return 0;
  });
  const same = Buffer.compare(Buffer.from(await new Response(body).arrayBuffer()), bytes) === 0;
  expect({ asked, same }).toEqual({ asked: [["decnet", [["data", 100]]]], same: true });
});

test("the read-ahead finds a format-2 delta's header (its body not compressed) and hands on every byte", async () => {
  using t = tempDir();
  const m = manifest([{ path: "decnet", size: 100 }]);
  const header = { format: 2, base: "a".repeat(64), block_size: 16384, manifest: m, ops: { decnet: [["zstd", 100, 20, null]] } };
  const h = zstdCompressSync(Buffer.from(JSON.stringify(header)));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(h.byteLength);
  const bytes = Buffer.concat([Buffer.from("DNZ2"), len, h, Buffer.alloc(20, 1)]);
  const asked: unknown[] = [];
  const body = await roomForDelta2(installPaths(t.dir), chunked(bytes, 5), { maxBytes: 1 << 30, contentLength: null }, (path, ops) => {
    asked.push([path, ops]);
    return 0;
  });
  const same = Buffer.compare(Buffer.from(await new Response(body).arrayBuffer()), bytes) === 0;
  expect({ asked, same }).toEqual({ asked: [["decnet", [["zstd", 100, 20, null]]]], same: true });
});

test("a gzip bomb is decompressed no further than the cap", () => {
  const bomb = gzipSync(Buffer.alloc(20 * 1024 * 1024));
  const plain = gunzipPrefix(bomb, 64 * 1024)!;
  expect({ compressed: bomb.length < 64 * 1024, kept: plain.length <= 64 * 1024 && plain.length > 0 }).toEqual({ compressed: true, kept: true });
});
