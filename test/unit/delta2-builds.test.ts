/**
 * Format 2 on real builds of this tree (A; B one app line changed; C 200 new
 * lines): the encoder plans from the executables themselves, the decoder
 * rebuilds each from A's bytes, and the result has the new sha256.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeDelta2 } from "../../src/core/delta2-encode.ts";
import { hashFile, planInputs, rangeReader } from "../../src/core/plan-input.ts";
import { openDelta2 } from "../../src/lib/delta2-decode.ts";
import { truncateDigests } from "../../src/protocol/block-index.ts";
import { BLOCK_SIZE } from "../../src/protocol/delta.ts";
import { type Manifest, releaseId } from "../../src/protocol/manifest.ts";
import { buildVariants, type Variants } from "../fixtures/variants.ts";

const work = mkdtempSync(join(tmpdir(), "decnet-delta2-builds-"));
let v: Variants;
beforeAll(async () => {
  v = await buildVariants(work);
}, 120_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

function manifestFor(h: ReturnType<typeof hashFile>): Manifest {
  const files = [{ path: "decnet", mode: "0755", size: h.size, sha256: h.sha256 }];
  return { format: 1, name: "decnet", version: "9.0.0-bench", git: { sha: "x", dirty: false }, built_at: null, target: "linux-x64", files, id: releaseId(files) };
}

async function* chunks(b: Uint8Array) {
  for (let o = 0; o < b.byteLength; o += 65536) yield b.subarray(o, o + 65536);
}

describe("round trip on real builds", () => {
  // A→B measured 4.9 kB before main's registry work and 5.2 kB after (the app section grows with the tree); the wire target is 20 kB both ways.
  for (const [name, limit] of [["B", 8_000], ["C", 20_000]] as const) {
    test(`A→${name}: rebuilt from A's bytes with ${name}'s sha256, in at most ${limit} bytes`, async () => {
      const hA = hashFile(v.A);
      const hN = hashFile(v[name]);
      const [mA, mN] = [manifestFor(hA), manifestFor(hN)];
      using a = rangeReader(v.A);
      const inputs = planInputs(mN, { decnet: v[name] }, { decnet: hN });
      const r = encodeDelta2({ manifest: mN, files: inputs.files, base: { release: mA.id, width: 8, files: { decnet: { size: hA.size, digests: truncateDigests(hA.digests) } } }, baseBytes: { read: (_p, o, l) => a.read(o, l) } });
      inputs.dispose();
      const reader = await openDelta2(chunks(r!.body), { id: mA.id, files: mA.files, read: (_p, o, l) => a.read(o, l) });
      const sha = new Bun.CryptoHasher("sha256");
      for await (const ev of reader.events()) {
        if (ev.type === "copy") sha.update(a.read(ev.first * BLOCK_SIZE, Math.min(hA.size, (ev.first + ev.count) * BLOCK_SIZE) - ev.first * BLOCK_SIZE));
        else if (ev.type === "bytes") sha.update(ev.data);
      }
      expect({ sha256: sha.digest("hex"), small: r!.body.byteLength <= limit, dict: r!.stats.framesWithDict === r!.stats.frames }).toEqual({ sha256: hN.sha256, small: true, dict: true });
    });
  }
});
