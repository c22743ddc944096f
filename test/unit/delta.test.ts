/**
 * Delta planning and resumable hashing, one module each: the planner keeps an
 * unchanged stretch one copy run even when it repeats blocks (zero pages), and
 * a hash resumed from a file's points equals hashing the whole file.
 */
import { expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { planDelta } from "../fixtures/delta1.ts";
import { writeTarball } from "../../src/lib/tarball.ts";
import { BLOCK_SIZE, BlockHasher } from "../../src/protocol/delta.ts";
import type { Manifest } from "../../src/protocol/manifest.ts";
import { CHECKPOINT, ResumableHash } from "../../src/daemons/updater/resumable-hash.ts";

const random = (n: number) => { const b = new Uint8Array(n); for (let o = 0; o < n; o += 65536) crypto.getRandomValues(b.subarray(o, o + 65536)); return b; };

test("an unchanged stretch with repeated blocks is one copy run from block 0", async () => {
  const dir = mkdtempSync(join(tmpdir(), "decnet-plan-"));
  try {
    const base = random(40 * BLOCK_SIZE);
    for (const zero of [5, 6, 10, 20, 21]) base.fill(0, zero * BLOCK_SIZE, (zero + 1) * BLOCK_SIZE);
    const next = Buffer.from(base);
    next.set(random(2 * BLOCK_SIZE), 38 * BLOCK_SIZE);
    writeFileSync(join(dir, "decnet"), next);
    await writeTarball(join(dir, "r.tar.gz"), dir, ["decnet"]);
    const h = new BlockHasher();
    h.update(base);
    const blocks = { release: "b".repeat(64), block_size: BLOCK_SIZE, files: { decnet: { size: base.byteLength, hashes: Buffer.from(h.finish()).toString("base64") } } };
    const plan = await planDelta(join(dir, "r.tar.gz"), { files: [{ path: "decnet", mode: "0755", size: next.byteLength, sha256: "x" }] } as Manifest, blocks);
    expect(plan?.header.ops).toEqual({ decnet: [["copy", "decnet", 0, 38], ["data", 2 * BLOCK_SIZE]] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a signed release's delta has ops only for the manifest's files: signature.json travels in the header", async () => {
  const dir = mkdtempSync(join(tmpdir(), "decnet-plan-"));
  try {
    const exe = random(4 * BLOCK_SIZE);
    writeFileSync(join(dir, "manifest.json"), "{}");
    writeFileSync(join(dir, "signature.json"), '{"format":1}');
    writeFileSync(join(dir, "decnet"), exe);
    await writeTarball(join(dir, "r.tar.gz"), dir, ["manifest.json", "signature.json", "decnet"]);
    const h = new BlockHasher();
    h.update(exe);
    const blocks = { release: "b".repeat(64), block_size: BLOCK_SIZE, files: { decnet: { size: exe.byteLength, hashes: Buffer.from(h.finish()).toString("base64") } } };
    const plan = await planDelta(join(dir, "r.tar.gz"), { files: [{ path: "decnet", mode: "0755", size: exe.byteLength, sha256: "x" }] } as Manifest, blocks);
    expect(plan?.header.ops).toEqual({ decnet: [["copy", "decnet", 0, 4]] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a hash resumed from a file's points equals the whole file's sha256, and its crc32s are per checkpoint", () => {
  const data = random(3 * CHECKPOINT + 12345);
  const whole = new ResumableHash();
  for (let off = 0; off < data.byteLength; off += 100_000) whole.update(data.subarray(off, off + 100_000)); // chunks across checkpoints
  const points = whole.points();
  // Another file with the same first two checkpoints and a different end.
  const other = Buffer.from(data);
  other[other.byteLength - 1]! ^= 1;
  const resumed = new ResumableHash({ points, bytes: 2 * CHECKPOINT });
  resumed.update(other.subarray(2 * CHECKPOINT));
  const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
  expect({
    whole: whole.hex() === sha(data),
    resumed: resumed.hex() === sha(other),
    sums: points.sums.map((s, i) => s === Bun.hash.crc32(data.subarray(i * CHECKPOINT, (i + 1) * CHECKPOINT))),
    noPointPastTheEnd: (() => { try { new ResumableHash({ points, bytes: 4 * CHECKPOINT }); return false; } catch { return true; } })(),
  }).toEqual({ whole: true, resumed: true, sums: [true, true, true], noPointPastTheEnd: true });
});
