/**
 * Delta format 2, encoder and decoder in process: crafted regions round-trip
 * byte for byte, and every hostile body is refused with its own reason
 * before anything wrong comes out.
 */
import { describe, expect, test } from "bun:test";
import { constants as Z, zstdCompressSync, zstdDecompressSync } from "node:zlib";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deltaBody, planDelta } from "../fixtures/delta1.ts";
import { encodeDelta1, encodeDelta2, type NewFile } from "../../src/core/delta2-encode.ts";
import { writeTarball } from "../../src/lib/tarball.ts";
import { Delta2Error, type Delta2Reason, openDelta2 } from "../../src/lib/delta2-decode.ts";
import { jsonDepth } from "../../src/lib/json-depth.ts";
import { type BlockIndex, truncateDigests } from "../../src/protocol/block-index.ts";
import { BLOCK_SIZE, BlockHasher } from "../../src/protocol/delta.ts";
import { DELTA2_MAGIC, type Delta2Header } from "../../src/protocol/delta2.ts";
import { type Manifest, releaseId } from "../../src/protocol/manifest.ts";

type Files = Record<string, Uint8Array>;

/** Deterministic bytes that look like code: random words, some repeated. */
function codeLike(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed;
  const next = () => (s = (s * 1103515245 + 12345) % 2147483648);
  const words = Array.from({ length: 64 }, () => Array.from({ length: 3 + (next() % 9) }, () => 97 + (next() % 26)));
  for (let i = 0; i < n; ) {
    const w = next() % 5 === 0 ? Array.from({ length: 6 }, () => next() % 256) : words[next() % words.length]!;
    for (const c of w) if (i < n) out[i++] = c;
    if (i < n) out[i++] = 32;
  }
  return out;
}

const splice = (b: Uint8Array, at: number, remove: number, insert: Uint8Array = new Uint8Array(0)) => Buffer.concat([b.subarray(0, at), insert, b.subarray(at + remove)]);

function digests(b: Uint8Array): Uint8Array {
  const h = new BlockHasher();
  h.update(b);
  return h.finish();
}

function manifestOf(files: Files): Manifest {
  const list = Object.entries(files).map(([path, b]) => ({ path, mode: "0755", size: b.byteLength, sha256: new Bun.CryptoHasher("sha256").update(b).digest("hex") }));
  return { format: 1, name: "decnet", version: "1.0.0", git: { sha: "x", dirty: false }, built_at: null, target: "linux-x64", files: list, id: releaseId(list) };
}

function indexOf(files: Files): BlockIndex {
  const m = manifestOf(files);
  return { release: m.id, width: 8, files: Object.fromEntries(Object.entries(files).map(([p, b]) => [p, { size: b.byteLength, digests: truncateDigests(digests(b)) }])) };
}

function encode(base: Files, next: Files, withDict = true) {
  const manifest = manifestOf(next);
  const files: NewFile[] = manifest.files.map((f) => ({ file: f, digests: digests(next[f.path]!), read: (o, l) => next[f.path]!.subarray(o, o + l) }));
  const r = encodeDelta2({ manifest, files, base: indexOf(base), baseBytes: withDict ? { read: (p, o, l) => base[p]?.subarray(o, o + l) ?? null } : null });
  if (!r) throw new Error("no delta");
  return r;
}

async function* chunks(b: Uint8Array, size = 7000) {
  for (let o = 0; o < b.byteLength; o += size) yield b.subarray(o, o + size);
}

/** Rebuilds the new release from `body` and the base, as the stager would (without the verified writer). */
async function decode(body: Uint8Array, base: Files, read = (p: string, o: number, l: number) => base[p]!.subarray(o, o + l)): Promise<Files> {
  const m = manifestOf(base);
  const r = await openDelta2(chunks(body), { id: m.id, files: m.files, read });
  const out: Record<string, Uint8Array[]> = {};
  let cur = "";
  for await (const ev of r.events()) {
    if (ev.type === "file") out[(cur = ev.file.path)] = [];
    else if (ev.type === "copy") out[cur]!.push(base[ev.path]!.subarray(ev.first * BLOCK_SIZE, Math.min(base[ev.path]!.byteLength, (ev.first + ev.count) * BLOCK_SIZE)));
    else if (ev.type === "bytes") out[cur]!.push(ev.data);
  }
  return Object.fromEntries(Object.entries(out).map(([p, parts]) => [p, Buffer.concat(parts)]));
}

const same = (a: Files, b: Files) => Object.keys(a).length === Object.keys(b).length && Object.entries(a).every(([p, x]) => b[p] !== undefined && Buffer.compare(x, b[p]!) === 0);

describe("round trip on crafted regions", () => {
  const base = codeLike(40 * BLOCK_SIZE + 1234, 1);

  test("an insertion in the middle shifts everything after it; the frames reach back into the base", async () => {
    const next = splice(base, 300_000, 0, new TextEncoder().encode("hello"));
    const { body, stats } = encode({ decnet: base }, { decnet: next });
    expect({ same: same(await decode(body, { decnet: base }), { decnet: next }), small: body.byteLength < 1500, dict: stats.framesWithDict === stats.frames, copied: stats.copiedBlocks }).toEqual({ same: true, small: true, dict: true, copied: Math.floor(300_000 / BLOCK_SIZE) });
  });

  test("a deletion", async () => {
    const next = splice(base, 100_000, 7);
    const { body } = encode({ decnet: base }, { decnet: next });
    expect({ same: same(await decode(body, { decnet: base }), { decnet: next }), small: body.byteLength < 1500 }).toEqual({ same: true, small: true });
  });

  test("growth across a block boundary: the short last block becomes whole and more follow", async () => {
    const small = base.subarray(0, 3 * BLOCK_SIZE + 100);
    const next = Buffer.concat([small, codeLike(20_000, 2)]);
    const { body } = encode({ decnet: small }, { decnet: next });
    const header = split(body).header;
    expect({ same: same(await decode(body, { decnet: small }), { decnet: next }), ops: header.ops.decnet!.map((o) => o.slice(0, 2)) }).toEqual({
      same: true,
      ops: [["copy", "decnet"], ["zstd", next.byteLength - 3 * BLOCK_SIZE]],
    });
  });

  test("a base shorter than the region: several frames, dictionaries cut at the base's end", async () => {
    const tiny = base.subarray(0, 10_000);
    const next = Buffer.concat([codeLike(200_000, 3), tiny, codeLike(200_000, 4)]);
    const { body, stats } = encode({ decnet: tiny }, { decnet: next });
    const dicts = split(body).header.ops.decnet!.map((o) => (o[0] === "zstd" ? o[3] : null));
    expect({ same: same(await decode(body, { decnet: tiny }), { decnet: next }), frames: stats.frames, inside: dicts.every((d) => d === null || d[1] + d[2] <= tiny.byteLength) }).toEqual({ same: true, frames: 2, inside: true });
  });

  test("without the base's bytes the frames have no dictionary and still round-trip", async () => {
    const next = splice(base, 500_000, 3, new Uint8Array([1, 2, 3, 4]));
    const { body, stats } = encode({ decnet: base }, { decnet: next }, false);
    expect({ same: same(await decode(body, { decnet: base }), { decnet: next }), dict: stats.framesWithDict }).toEqual({ same: true, dict: 0 });
  });

  test("several files: one new, one moved from another base file", async () => {
    const lib = codeLike(5 * BLOCK_SIZE, 5);
    const next = { decnet: lib, "extra.so": codeLike(70_000, 6), "data.bin": base };
    const { body } = encode({ decnet: base, "lib.so": lib }, next);
    expect(same(await decode(body, { decnet: base, "lib.so": lib }), next)).toBe(true);
  });
});

/** The parts of a body, to tamper with. */
function split(body: Uint8Array): { header: Delta2Header; frames: Uint8Array } {
  const len = new DataView(body.buffer, body.byteOffset + 4, 4).getUint32(0, true);
  return { header: JSON.parse(zstdDecompressSync(body.subarray(8, 8 + len)).toString()) as Delta2Header, frames: body.subarray(8 + len) };
}

function assemble(header: unknown, frames: Uint8Array, text = JSON.stringify(header)): Uint8Array {
  const h = zstdCompressSync(Buffer.from(text), { params: { [Z.ZSTD_c_contentSizeFlag]: 1 } });
  const len = new Uint8Array(4);
  new DataView(len.buffer).setUint32(0, h.byteLength, true);
  return Buffer.concat([DELTA2_MAGIC, len, h, frames]);
}

/** The refusal of a body: code and reason, or "accepted". */
async function refusal(body: Uint8Array, base: Files, read?: (p: string, o: number, l: number) => Uint8Array): Promise<{ code: string; reason: Delta2Reason } | "accepted"> {
  try {
    await decode(body, base, read);
    return "accepted";
  } catch (e) {
    if (e instanceof Delta2Error) return { code: e.code, reason: e.reason };
    throw e;
  }
}

describe("hostile bodies", () => {
  const base = codeLike(40 * BLOCK_SIZE + 1234, 7);
  // Two frames in one file: 256 KiB of changed bytes from block 2 on, and the tail.
  const next = Buffer.concat([base.subarray(0, 2 * BLOCK_SIZE), codeLike(256 * 1024 + 5 * BLOCK_SIZE, 8), base.subarray(25 * BLOCK_SIZE)]);
  const good = encode({ decnet: base }, { decnet: next }).body;
  const { header, frames } = split(good);
  const ops = header.ops.decnet!;
  const zstdAt = ops.flatMap((o, i) => (o[0] === "zstd" ? [i] : []));
  const edit = (f: (h: Delta2Header) => void) => {
    const h = structuredClone(header);
    f(h);
    return h;
  };
  const B = { decnet: base };

  test("the untouched body is accepted (the cases below differ from it in one thing)", async () => {
    expect({ accepted: await refusal(good, B), frames: zstdAt.length }).toEqual({ accepted: "accepted", frames: 2 });
  });

  test("a dictionary reference past the end of the base", async () => {
    const h = edit((h) => { (h.ops.decnet![zstdAt[0]!] as any)[3] = ["decnet", base.byteLength - 100, 1000]; });
    expect(await refusal(assemble(h, frames), B)).toEqual({ code: "bad_archive", reason: "dict_outside_base" });
  });

  test("a dictionary in a file the base does not have: the master should send it whole", async () => {
    const h = edit((h) => { (h.ops.decnet![zstdAt[0]!] as any)[3] = ["other", 0, 1000]; });
    expect(await refusal(assemble(h, frames), B)).toEqual({ code: "delta_unavailable", reason: "base_unavailable" });
  });

  test("a copy past the end of the base", async () => {
    const h = edit((h) => { (h.ops.decnet![0] as any)[2] = 40; });
    expect(await refusal(assemble(h, frames), B)).toEqual({ code: "bad_archive", reason: "copy_outside_base" });
  });

  test("a frame that decompresses to more than its op says (the sizes still add up)", async () => {
    const h = edit((h) => {
      (h.ops.decnet![zstdAt[0]!] as any)[1] -= BLOCK_SIZE;
      (h.ops.decnet![zstdAt[1]!] as any)[1] += BLOCK_SIZE;
    });
    expect(await refusal(assemble(h, frames), B)).toEqual({ code: "bad_archive", reason: "size_mismatch" });
  });

  test("ops whose sizes do not make the manifest's", async () => {
    const h = edit((h) => { (h.ops.decnet![zstdAt[1]!] as any)[1] += BLOCK_SIZE; });
    expect(await refusal(assemble(h, frames), B)).toEqual({ code: "bad_archive", reason: "ops_mismatch" });
  });

  test("a truncated zstd frame (its slot shortened to match)", async () => {
    const first = (ops[zstdAt[0]!] as any)[2] as number;
    const h = edit((h) => { (h.ops.decnet![zstdAt[0]!] as any)[2] = first - 5; });
    const cut = Buffer.concat([frames.subarray(0, first - 5), frames.subarray(first)]);
    expect(await refusal(assemble(h, cut), B)).toEqual({ code: "bad_archive", reason: "truncated_frame" });
  });

  test("a body that ends inside a frame", async () => {
    expect(await refusal(good.subarray(0, good.byteLength - 3), B)).toEqual({ code: "bad_archive", reason: "truncated_body" });
  });

  test("bytes after a frame inside its slot, and after the last frame", async () => {
    const first = (ops[zstdAt[0]!] as any)[2] as number;
    const h = edit((h) => { (h.ops.decnet![zstdAt[0]!] as any)[2] = first + 3; });
    const padded = Buffer.concat([frames.subarray(0, first), new Uint8Array([0, 0, 0]), frames.subarray(first)]);
    expect({
      inSlot: await refusal(assemble(h, padded), B),
      atEnd: await refusal(Buffer.concat([good, new Uint8Array([1])]), B),
    }).toEqual({ inSlot: { code: "bad_archive", reason: "bad_frame" }, atEnd: { code: "bad_archive", reason: "trailing_bytes" } });
  });

  test("a base whose bytes differ from the master's copy: the frame checksum fails", async () => {
    const damaged = Buffer.from(base);
    for (let i = 2 * BLOCK_SIZE; i < damaged.byteLength; i += 997) damaged[i]! ^= 0x5a;
    expect(await refusal(good, B, (_p, o, l) => damaged.subarray(o, o + l))).toEqual({ code: "bad_archive", reason: "bad_frame" });
  });

  test("a header nested too deep, too large, or not for this base; not format 2 at all", async () => {
    const deep = JSON.stringify(header).replace('"format":2', `"x":${"[".repeat(100)}${"]".repeat(100)},"format":2`);
    const big = JSON.stringify({ ...header, pad: "x".repeat(1024 * 1024) });
    const other = edit((h) => { h.base = "f".repeat(64); });
    expect({
      deep: await refusal(assemble(null, frames, deep), B),
      depth: jsonDepth(deep),
      big: await refusal(assemble(null, frames, big), B),
      base: await refusal(assemble(other, frames), B),
      gzip: await refusal(Bun.gzipSync(Buffer.from(good)), B),
    }).toEqual({
      deep: { code: "bad_archive", reason: "header_too_deep" },
      depth: 101,
      big: { code: "bad_archive", reason: "header_too_large" },
      base: { code: "bad_archive", reason: "base_mismatch" },
      gzip: { code: "bad_archive", reason: "bad_magic" },
    });
  });

  test("a frame without a checksum", async () => {
    const data = next.subarray(2 * BLOCK_SIZE, 2 * BLOCK_SIZE + 256 * 1024);
    const plain = zstdCompressSync(data, { params: { [Z.ZSTD_c_contentSizeFlag]: 1 } });
    const h = edit((h) => { h.ops.decnet![zstdAt[0]!] = ["zstd", 256 * 1024, plain.byteLength, null]; });
    const first = (ops[zstdAt[0]!] as any)[2] as number;
    expect(await refusal(assemble(h, Buffer.concat([plain, frames.subarray(first)])), B)).toEqual({ code: "bad_archive", reason: "bad_frame" });
  });
});

test("format 1 from the same inputs (for an older updater) is the body today's tarball planner makes", async () => {
  const base = codeLike(30 * BLOCK_SIZE + 99, 9);
  const next = splice(base, 400_000, 0, new TextEncoder().encode("one more line"));
  const manifest = manifestOf({ decnet: next });
  const dir = mkdtempSync(join(tmpdir(), "decnet-d1-"));
  try {
    writeFileSync(join(dir, "decnet"), next);
    await writeTarball(join(dir, "r.tar.gz"), dir, ["decnet"]);
    const full = digests(base);
    const blocks = { release: manifestOf({ decnet: base }).id, block_size: BLOCK_SIZE, files: { decnet: { size: base.byteLength, hashes: Buffer.from(full).toString("base64") } } };
    const today = await deltaBody((await planDelta(join(dir, "r.tar.gz"), manifest, blocks))!);
    const mine = encodeDelta1({ manifest, files: [{ file: manifest.files[0]!, digests: digests(next), read: (o, l) => next.subarray(o, o + l) }], base: { release: blocks.release, width: 32, files: { decnet: { size: base.byteLength, digests: full } } } });
    expect(Buffer.compare(Bun.gunzipSync(Buffer.from(mine!.body)), Bun.gunzipSync(Buffer.from(today)))).toBe(0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
