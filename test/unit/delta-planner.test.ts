/**
 * DeltaPlanner on files in a temp dir and a temp cache, with the worker's
 * index routes as counting stand-ins: a base the master never made is asked
 * of each host and never cached (hosts share a plan only when their answers
 * are the same bytes), a remembered base is never asked, format 2 uses the
 * remembered base's bytes, format 1 is for an updater that does not say it takes 2.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DeltaPlanner, type IndexFetch } from "../../src/core/delta-planner.ts";
import { ReleaseCache } from "../../src/core/release-cache.ts";
import { openDelta2 } from "../../src/lib/delta2-decode.ts";
import { decodeIndexQuery, encodeCompactIndex } from "../../src/protocol/block-index.ts";
import { BLOCK_SIZE, BlockHasher } from "../../src/protocol/delta.ts";
import { type Manifest, releaseId } from "../../src/protocol/manifest.ts";

const random = (n: number) => { const b = new Uint8Array(n); for (let o = 0; o < n; o += 65536) crypto.getRandomValues(b.subarray(o, Math.min(n, o + 65536))); return b; };
const digestsOf = (b: Uint8Array) => { const h = new BlockHasher(); h.update(b); return h.finish(); };

function manifestOf(b: Uint8Array): Manifest {
  const files = [{ path: "decnet", mode: "0755", size: b.byteLength, sha256: new Bun.CryptoHasher("sha256").update(b).digest("hex") }];
  return { format: 1, name: "decnet", version: "1.0.0", git: { sha: "x", dirty: false }, built_at: null, target: "linux-x64", files, id: releaseId(files) };
}

test("a worker's index is asked per host and never cached; a remembered base is never asked; format 2 against its bytes; format 1 for an older updater", async () => {
  const dir = mkdtempSync(join(tmpdir(), "decnet-planner-"));
  try {
    const cache = new ReleaseCache(join(dir, "cache"));
    const a = random(80 * BLOCK_SIZE + 10);
    const b = Buffer.concat([a.subarray(0, 70 * BLOCK_SIZE + 3), new TextEncoder().encode("a new line"), a.subarray(70 * BLOCK_SIZE + 3)]);
    writeFileSync(join(dir, "a"), a);
    writeFileSync(join(dir, "b"), b);
    const [mA, mB] = [manifestOf(a), manifestOf(b)];
    const full = { release: mA.id, width: 32, files: { decnet: { size: a.byteLength, digests: digestsOf(a) } } };
    const asked = { compact: 0, json: 0 };
    const worker: IndexFetch = {
      compact: async (q) => { asked.compact++; const index = encodeCompactIndex(full, decodeIndexQuery(q)); return { index, wire: index.byteLength }; },
      json: async () => { asked.json++; return { release: mA.id, block_size: BLOCK_SIZE, files: { decnet: { size: a.byteLength, hashes: Buffer.from(full.files.decnet.digests).toString("base64") } } }; },
    };

    // A push of B to hosts on A, which this master never saw: each host asked (compactly), the same answers share one plan, no copy of A (no dictionary).
    using first = new DeltaPlanner(mB, { decnet: join(dir, "b") }, {}, cache);
    const [h1, h2] = await Promise.all([first.body(mA.id, [1, 2], worker), first.body(mA.id, [1, 2], worker)]);
    // An older updater on A: format 1, its index asked as JSON (the answers above were not cached).
    const old = await first.body(mA.id, [1], worker);
    // A worker answering a different index for A gets its own plan, and its peers' are untouched.
    const liar: IndexFetch = { json: async () => ({ release: mA.id, block_size: BLOCK_SIZE, files: { decnet: { size: a.byteLength, hashes: Buffer.from(digestsOf(b.subarray(0, a.byteLength))).toString("base64") } } }) };
    const lied = await first.body(mA.id, [1], liar);
    const notCached = cache.index(mA.id) === null;

    // Later the master pushes A itself (it remembers A), then B again to a host on A: nothing fetched, frames against A's bytes.
    using pushA = new DeltaPlanner(mA, { decnet: join(dir, "a") }, {}, cache);
    pushA.remember();
    using second = new DeltaPlanner(mB, { decnet: join(dir, "b") }, {}, cache);
    const again = await second.body(mA.id, [1, 2], worker);

    const rebuilt: Uint8Array[] = [];
    const r = await openDelta2((async function* () { yield again.planned!.body; })(), { id: mA.id, files: mA.files, read: (_p, o, l) => a.subarray(o, o + l) });
    for await (const ev of r.events()) {
      if (ev.type === "copy") rebuilt.push(a.subarray(ev.first * BLOCK_SIZE, Math.min(a.byteLength, (ev.first + ev.count) * BLOCK_SIZE)));
      if (ev.type === "bytes") rebuilt.push(ev.data);
    }
    expect({
      asked,
      notCached,
      shared: h1.planned === h2.planned,
      first: { format: h1.planned!.format, received: h1.received > 0 && h2.received === h1.received, dict: h1.planned!.framesWithDict },
      old: { format: old.planned!.format, received: old.received > 0, header: JSON.parse(Buffer.from(Bun.gunzipSync(Buffer.from(old.planned!.body))).toString("latin1").split("\n")[0]!).format },
      lied: lied.planned !== old.planned,
      again: { format: again.planned!.format, received: again.received, dict: again.planned!.framesWithDict > 0, small: again.planned!.body.byteLength < 1000 },
      rebuilt: Buffer.compare(Buffer.concat(rebuilt), b) === 0,
    }).toEqual({
      asked: { compact: 2, json: 1 },
      notCached: true,
      shared: true,
      first: { format: 2, received: true, dict: 0 },
      old: { format: 1, received: true, header: 1 },
      lied: true,
      again: { format: 2, received: 0, dict: true, small: true },
      rebuilt: true,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
