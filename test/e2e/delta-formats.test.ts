/**
 * Delta formats on the wire (DESIGN §17), with real updaters: a format-2
 * delta installed and verified, its index from the master's cache (nothing
 * received); an updater built from decnet before format 2 (commit 1cd7637)
 * gets format 1 and updates, in the same push as a format-2 host; a base the
 * master never made is asked of the worker (compactly), never cached, and the
 * next push from what the master pushed needs no index at all; hostile
 * format-2 bodies are refused with nothing changed.
 */
import { beforeAll, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { join } from "node:path";
import { constants as Z, zstdCompressSync } from "node:zlib";
import { binaryAtCommit, release } from "../fleet/harness.ts";
import { manifest, SCRIPT, sha256 } from "../fixtures/tar.ts";
import { useFleet } from "../fleet/use-fleet.ts";

/** The last commit before delta format 2. */
const BEFORE_FORMAT_2 = "1cd7637";

const fleet = useFleet({ workers: 3, start: ["w1", "w3"] });
let old: string;
beforeAll(async () => {
  old = await binaryAtCommit(BEFORE_FORMAT_2);
  await fleet.startUpdater(fleet.worker("w2"), {}, old);
}, 600_000);

const installed = (host: string, id: string) => {
  const w = fleet.worker(host);
  const m = JSON.parse(readFileSync(join(w.paths.release(id), "manifest.json"), "utf8"));
  return sha256(readFileSync(join(w.paths.release(id), "decnet"))) === m.files[0].sha256;
};
const cacheIndex = (id: string) => join(fleet.env.DECNET_HOME!, "cache", "releases", "index", `${id}.idx`);

test("a format-2 delta is installed and verified; its index came from the master's cache, so nothing was received", async () => {
  const [v1, v2] = [await release("v1"), await release("v2")];
  const first = await fleet.update(["--host", "w1", "--artifact", v1.file]);
  const second = await fleet.update(["--host", "w1", "--artifact", v2.file]);
  const row = second.row();
  expect({
    first: [first.code, first.row().transfer?.mode],
    second: [second.code, row.agent, row.transfer?.mode, row.transfer?.format, row.transfer?.base, row.transfer?.received, row.install?.mode],
    small: row.transfer!.bytes < 20_000 && row.bytes_sent === row.transfer!.bytes,
    detail: row.detail.includes(`delta ${(row.transfer!.bytes / 1000).toFixed(0)} kB against ${v1.id.slice(0, 12)}`) && !row.detail.includes("index ="),
    running: (await fleet.health(fleet.worker("w1"))).agent.release === v2.id,
    verified: installed("w1", v2.id),
  }).toEqual({
    first: [0, "full"],
    second: [0, "updated", "delta", 2, v1.id, 0, "delta"],
    small: true,
    detail: true,
    running: true,
    verified: true,
  });
});

test("an updater from before format 2 gets format 1 and updates, in the same push as a host that takes format 2", async () => {
  const [v1, v3] = [await release("v1"), await release("v3")];
  const says = (await fleet.health(fleet.worker("w2"))).delta_formats;
  const full = await fleet.update(["--host", "w2", "--artifact", v1.file]);
  // w1 runs v2, w2 v1: both bases this master pushed, so both indexes come from its cache.
  const mixed = await fleet.update(["--host", "w1,w2", "--artifact", v3.file]);
  const t = (r: typeof mixed, h: string) => [r.row(h).agent, r.row(h).transfer?.mode, r.row(h).transfer?.format];
  expect({
    says: says ?? "absent",
    full: [full.code, full.row().agent],
    mixed: [mixed.code, t(mixed, "w1"), t(mixed, "w2"), mixed.row("w2").transfer?.received],
    running: (await fleet.health(fleet.worker("w2"))).agent.release === v3.id,
    verified: installed("w2", v3.id),
  }).toEqual({
    says: "absent",
    full: [0, "updated"],
    mixed: [0, ["updated", "delta", 2], ["updated", "delta", 1], 0],
    running: true,
    verified: true,
  });
});

test("a base the master never made is asked of the worker (compactly), not cached; the next push from what it pushed needs no index", async () => {
  const [v1, v2, v4] = [await release("v1"), await release("v2"), await release("v4")];
  await fleet.update(["--host", "w3", "--artifact", v1.file, "--full"]);
  // As if another master had made v1: this one forgets every release it knew.
  rmSync(join(fleet.env.DECNET_HOME!, "cache", "releases"), { recursive: true, force: true });
  const cold = await fleet.update(["--host", "w3", "--artifact", v2.file]);
  const warm = await fleet.update(["--host", "w3", "--artifact", v4.file]);
  const c = cold.row();
  const w = warm.row();
  expect({
    cold: [cold.code, c.agent, c.transfer?.mode, c.transfer?.format, c.transfer!.received > 0 && c.transfer!.received < 10_000, c.detail.includes("index =")],
    notCached: !existsSync(cacheIndex(v1.id)),
    remembered: existsSync(cacheIndex(v2.id)),
    warm: [warm.code, w.agent, w.transfer?.mode, w.transfer?.format, w.transfer?.base, w.transfer?.received],
    verified: installed("w3", v4.id),
  }).toEqual({
    cold: [0, "updated", "delta", 2, true, true],
    notCached: true,
    remembered: true,
    warm: [0, "updated", "delta", 2, v2.id, 0],
    verified: true,
  });
});

/** A raw format-2 body: magic, header frame length, zstd(header), then `frames` as they are. */
function delta2(header: unknown, frames: Uint8Array[] = []): Uint8Array {
  const h = zstdCompressSync(Buffer.from(JSON.stringify(header)), { params: { [Z.ZSTD_c_contentSizeFlag]: 1 } });
  const len = Buffer.alloc(4);
  len.writeUInt32LE(h.byteLength);
  return new Uint8Array(Buffer.concat([Buffer.from("DNZ2"), len, h, ...frames]));
}
const frameOf = (data: Uint8Array | string) => zstdCompressSync(Buffer.from(data), { params: { [Z.ZSTD_c_checksumFlag]: 1, [Z.ZSTD_c_contentSizeFlag]: 1 } });

test("hostile format-2 bodies are refused (4xx) with nothing changed", async () => {
  const w = fleet.worker("w1");
  const current = readlinkSync(w.paths.current).replace("releases/", "");
  const baseSize = JSON.parse(readFileSync(join(w.paths.release(current), "manifest.json"), "utf8")).files[0].size as number;
  const m = JSON.parse(manifest([{ path: "decnet", data: SCRIPT }]));
  const n = SCRIPT.length;
  const good = frameOf(SCRIPT);
  const h = (ops: unknown[], patch: Record<string, unknown> = {}) => ({ format: 2, base: current, block_size: 16384, manifest: m, ops: { decnet: ops }, ...patch });
  const twice = frameOf(SCRIPT + SCRIPT);
  const cases: Array<[string, Uint8Array, string, number]> = [
    ["a dictionary past the base's end", delta2(h([["zstd", n, good.byteLength, ["decnet", baseSize - 10, 100]]]), [good]), "bad_archive", 400],
    ["a copy past the base's end", delta2(h([["copy", "decnet", 10_000_000, 1]])), "bad_archive", 400],
    ["a frame decompressing past the header's size", delta2(h([["zstd", n, twice.byteLength, null]]), [twice]), "bad_archive", 400],
    ["a truncated zstd frame", delta2(h([["zstd", n, good.byteLength, null]]), [good.subarray(0, good.byteLength - 5)]), "bad_archive", 400],
    ["a frame cut short by the body's end", delta2(h([["zstd", n, good.byteLength + 50, null]]), [good]), "bad_archive", 400],
    ["trailing bytes", delta2(h([["zstd", n, good.byteLength, null]]), [good, Buffer.from("junk")]), "bad_archive", 400],
    ["a wrong literal (sha256)", delta2(h([["zstd", n, good.byteLength, null]]), [frameOf(SCRIPT.replace("6.6.6", "6.6.7"))]), "bad_archive", 400],
    ["a release id mismatch", delta2(h([["zstd", n, good.byteLength, null]], { manifest: { ...m, id: sha256("x") } }), [good]), "bad_archive", 400],
    ["not format 2 (no magic)", new TextEncoder().encode("plain"), "bad_archive", 400],
  ];
  const before = { current: readlinkSync(w.paths.current), releases: readdirSync(w.paths.releases).sort() };
  const results = [];
  for (const [name, body] of cases) {
    const res = await fleet.request(w, "updater", `/update?delta=${current}&format=2`, { method: "POST", body });
    results.push([name, ((await res.json()) as { error: { code: string } }).error.code, res.status]);
  }
  const gone = sha256("gone");
  const missingBase = await fleet.request(w, "updater", `/update?delta=${gone}&format=2`, { method: "POST", body: delta2(h([], { base: gone })) });
  expect(results).toEqual(cases.map(([name, , code, status]) => [name, code, status]));
  expect([missingBase.status, ((await missingBase.json()) as { error: { code: string } }).error.code]).toEqual([412, "delta_unavailable"]);
  expect({ current: readlinkSync(w.paths.current), releases: readdirSync(w.paths.releases).sort(), staging: existsSync(w.paths.staging("x")) }).toEqual({ ...before, staging: false });
});
