/**
 * The tarball gate in process, on a temp install dir: every tar entry type
 * but a regular file refused wherever it stands (before the manifest too)
 * and before its data is read; pax headers only as node-tar writes them for a
 * long name; declared sizes checked before a byte is written; reading stops
 * at end-of-archive (only bounded zero padding after it); decompressed bytes
 * bounded; truncated told apart from corrupt. Every refusal leaves no staging.
 */
import { expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { stageUpload } from "../../src/daemons/updater/stage.ts";
import { gunzip } from "../../src/lib/gunzip.ts";
import { installPaths } from "../../src/lib/paths.ts";
import { manifestFor } from "../../src/protocol/manifest.ts";
import { writeTarball } from "../../src/lib/tarball.ts";
import { manifest, pax, SCRIPT, sha256, tar } from "../fixtures/tar.ts";

const ok = [{ path: "decnet", data: SCRIPT }];
const man = (files = ok, patch = {}) => ({ name: "manifest.json", data: manifest(files, patch) });
const script = { name: "decnet", data: SCRIPT, mode: 0o755 };
const gz = (b: Uint8Array) => new Uint8Array(gzipSync(b));

function world() {
  const dir = mkdtempSync(join(tmpdir(), "decnet-stage-"));
  const paths = installPaths(join(dir, "install"));
  /** Stages `body`; the refusal's code and message, or "staged". */
  const push = async (body: Uint8Array | ReadableStream<Uint8Array>) => {
    const stream = body instanceof Uint8Array ? new Blob([body]).stream() : body;
    try {
      const s = await stageUpload(paths, stream, { maxBytes: 1 << 30, contentLength: null });
      rmSync(s.dir, { recursive: true });
      return "staged";
    } catch (e) {
      return `${(e as { code?: string }).code}: ${(e as Error).message}`;
    }
  };
  const staging = () => readdirSync(paths.releases).filter((n) => n.startsWith(".staging"));
  return { dir, paths, push, staging, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

// Every type flag tar implementations write, but a regular file's.
const TYPES: Record<string, string> = {
  "1": "hard link", "2": "symlink", "3": "character device", "4": "block device", "5": "directory", "6": "FIFO", "7": "contiguous file",
  g: "pax global header", A: "Solaris ACL", D: "GNU dump dir", I: "inode metadata", K: "GNU long link name", L: "GNU long name",
  M: "GNU multi-volume continuation", N: "GNU old long name", S: "GNU sparse file", V: "volume label", X: "old pax extended header", Z: "compressed file", q: 'type "q"',
};

test("every entry type but a regular file is refused, before the manifest and after it, without reading its data", async () => {
  using w = world();
  const got: Record<string, [string, string]> = {};
  const want: Record<string, [string, string]> = {};
  for (const [flag, kind] of Object.entries(TYPES)) {
    const linkname = flag === "1" || flag === "2" ? "decnet" : undefined;
    // Declares 256 MiB and carries none: refused from the header, or it would be "truncated".
    const entry = { name: "thing", type: flag, size: 256 * 1024 * 1024, linkname };
    const before = await w.push(gz(tar([entry], { end: false })));
    const after = await w.push(gz(tar([man(), entry], { end: false })));
    got[flag] = [before, after];
    want[flag] = [`bad_archive: the first entry must be manifest.json, got a ${kind} (thing)`, `bad_archive: refused: ${kind} entry thing${linkname ? " -> decnet" : ""}`];
  }
  expect(got).toEqual(want);
  expect(w.staging()).toEqual([]);
});

test("pax headers pass only as node-tar writes them for a long file name; anything else is refused", async () => {
  using w = world();
  const long = "n".repeat(120);
  const files = [...ok, { path: long, data: "hello", mode: "0644" }];
  // The real packer: node-tar writes a pax header (path, mtime, size) for the 120-byte name.
  const src = join(w.dir, "src");
  mkdirSync(src);
  writeFileSync(join(src, "manifest.json"), manifest(files));
  writeFileSync(join(src, "decnet"), SCRIPT, { mode: 0o755 });
  writeFileSync(join(src, long), "hello", { mode: 0o644 });
  await writeTarball(join(w.dir, "long.tar.gz"), src, ["manifest.json", "decnet", long]);
  const longEntry = { name: "n".repeat(99), data: "hello", mode: 0o644 };
  const withPax = (records: Record<string, string>, next: object = longEntry) => gz(tar([man(files), script, { name: "PaxHeader/x", type: "x", data: pax(records) }, next as never]));
  expect({
    packed: await w.push(await Bun.file(join(w.dir, "long.tar.gz")).bytes()),
    path: await w.push(withPax({ path: long, mtime: "1700000000.5", size: "5" })),
    linkpath: await w.push(withPax({ path: long, linkpath: "/etc/shadow" })),
    uid: await w.push(withPax({ path: long, uid: "0" })),
    sparse: await w.push(withPax({ "GNU.sparse.map": "0,5", path: long })),
    size: await w.push(withPax({ path: long, size: "99999" })),
    dir: await w.push(withPax({ path: "lib" }, { name: "lib", type: "5" })),
    malformed: await w.push(gz(tar([man(files), script, { name: "PaxHeader/x", type: "x", data: "99 path=x\n" }, longEntry]))),
    beforeManifest: await w.push(gz(tar([{ name: "PaxHeader/m", type: "x", data: pax({ path: "manifest.json" }) }, man(files)]))),
    global: await w.push(gz(tar([man(files), { name: "pax_global_header", type: "g", data: pax({ path: long }) }, script]))),
  }).toEqual({
    packed: "staged",
    path: "staged",
    linkpath: `bad_archive: refused: a pax header for ${long} sets linkpath, which a release entry never needs`,
    uid: `bad_archive: refused: a pax header for ${long} sets uid, which a release entry never needs`,
    sparse: `bad_archive: refused: a pax header for ${"n".repeat(99)} sets GNU.sparse.map, which a release entry never needs`,
    size: `bad_archive: refused: a pax header says ${long} has 99999 bytes, its tar header 5`,
    dir: "bad_archive: refused: a pax header not followed by a regular file (directory lib)",
    malformed: "bad_archive: malformed pax record at byte 0 of its header",
    beforeManifest: "bad_archive: the first entry must be manifest.json, got a pax extended header (PaxHeader/m)",
    global: "bad_archive: refused: pax global header entry pax_global_header",
  });
  expect(w.staging()).toEqual([]);
});

test("reading stops at end-of-archive: bounded zero padding passes, anything else after it is refused at once", async () => {
  using w = world();
  const release = tar([man(), script]);
  const zeros = (n: number) => new Uint8Array(n);
  // 64 MiB of zeros after the end: 65 kB gzipped. Refused after the first MiB, not read to the end.
  const tail = gz(Buffer.concat([release, zeros(64 * 1024 * 1024)]));
  const t0 = performance.now();
  const bigTail = await w.push(tail);
  const bigTailMs = performance.now() - t0;
  expect({
    record: await w.push(gz(Buffer.concat([release, zeros(10240 - (release.byteLength % 10240))]))),
    bigTail,
    fast: bigTailMs < 1000,
    junk: await w.push(gz(Buffer.concat([release, new TextEncoder().encode("junk")]))),
    entryAfter: await w.push(gz(Buffer.concat([release, tar([{ name: "extra", data: "x" }])]))),
    loneZero: await w.push(gz(Buffer.concat([tar([man(), script], { end: false }), zeros(512), tar([{ name: "extra", data: "x" }])]))),
    noEnd: await w.push(gz(tar([man(), script], { end: false }))),
    gzipGarbage: await w.push(new Uint8Array(Buffer.concat([gz(release), new TextEncoder().encode("trailing garbage")]))),
    secondMember: await w.push(new Uint8Array(Buffer.concat([gz(release), gz(zeros(4096))]))),
  }).toEqual({
    record: "staged",
    bigTail: "bad_archive: more than 1048576 bytes of padding after the end of the archive",
    fast: true,
    junk: `bad_archive: bytes after the end of the archive (byte ${release.byteLength})`,
    entryAfter: `bad_archive: bytes after the end of the archive (byte ${release.byteLength})`,
    loneZero: `bad_archive: a tar entry follows a zero block at byte ${release.byteLength - 1024}: a lone zero block is not accepted`,
    noEnd: `bad_archive: truncated archive: it ends at byte ${release.byteLength - 1024} without an end-of-archive marker`,
    gzipGarbage: "bad_archive: corrupt archive: not a valid gzip stream (inflate failed)",
    secondMember: "staged",
  });
  expect(w.staging()).toEqual([]);
});

test("declared sizes are the manifest's before a byte is written, and the total a release may declare is bounded", async () => {
  using w = world();
  // Headers only: if any data were awaited, these would be "truncated".
  const lying = await w.push(gz(tar([man(), { ...script, size: 256 * 1024 * 1024, data: "" }], { end: false })));
  const huge = JSON.stringify(manifestFor({ version: "6.6.6", target: "linux-x64" }, [{ path: "decnet", mode: "0755", size: 2 ** 31 + 1, sha256: sha256("") }]));
  expect({
    lying,
    tooBig: await w.push(gz(tar([{ name: "manifest.json", data: huge }], { end: false }))),
  }).toEqual({
    lying: `bad_archive: size mismatch for decnet: archive 268435456, manifest ${SCRIPT.length}`,
    tooBig: "bad_archive: release declares 2147483649 bytes, more than 2147483648",
  });
});

test("truncated, corrupt and not-gzip uploads say which, and decompressed bytes are bounded", async () => {
  using w = world();
  const good = gz(tar([man(), script]));
  const corrupt = good.slice();
  corrupt.fill(0x41, 20, 120);
  const bomb = gz(new Uint8Array(8 * 1024 * 1024));
  const inflated = async () => {
    let n = 0;
    try {
      for await (const c of gunzip(new Blob([bomb]).stream(), 1024 * 1024, "test body")) n += c.byteLength;
      return `read ${n}`;
    } catch (e) {
      return `${(e as { code?: string }).code}: ${(e as Error).message}`;
    }
  };
  expect({
    truncated: await w.push(good.subarray(0, good.byteLength - 30)),
    corrupt: await w.push(corrupt),
    notGzip: await w.push(new TextEncoder().encode("hello, updater")),
    empty: await w.push(new Uint8Array(0)),
    bomb: await inflated(),
  }).toEqual({
    truncated: "bad_archive: truncated archive: the gzip stream ends early",
    corrupt: "bad_archive: corrupt archive: not a valid gzip stream (inflate failed)",
    notGzip: "bad_archive: corrupt archive: not a valid gzip stream (inflate failed)",
    empty: "bad_archive: truncated archive: the gzip stream ends early",
    bomb: "bad_archive: test body expands to more than 1048576 bytes",
  });
  expect(w.staging()).toEqual([]);
});

test("a release packed with decnet's own writer stages, with its sizes and digests", async () => {
  using w = world();
  const src = join(w.dir, "src");
  mkdirSync(src);
  writeFileSync(join(src, "manifest.json"), manifest(ok));
  writeFileSync(join(src, "decnet"), SCRIPT, { mode: 0o755 });
  await writeTarball(join(w.dir, "r.tar.gz"), src, ["manifest.json", "decnet"]);
  const body = await Bun.file(join(w.dir, "r.tar.gz")).bytes();
  const s = await stageUpload(w.paths, new Blob([body]).stream(), { maxBytes: 1 << 30, contentLength: body.byteLength });
  expect({ id: s.manifest.id, report: s.report, files: readdirSync(s.dir).sort(), sha: sha256(await Bun.file(join(s.dir, "decnet")).bytes()) }).toEqual({
    id: JSON.parse(manifest(ok)).id,
    report: { mode: "full", bytes_received: body.byteLength, bytes_written: SCRIPT.length, bytes_in_place: 0, bytes_resumed: 0 },
    files: ["decnet", "manifest.json"],
    sha: sha256(SCRIPT),
  });
});

test("a signed release's signature.json, as its second entry, is handed on and never written; anywhere else or oversized it is refused", async () => {
  using w = world();
  const sig = '{"format":1}';
  const signed = gz(tar([man(), { name: "signature.json", data: sig, mode: 0o644 }, script]));
  const s = await stageUpload(w.paths, new Blob([signed]).stream(), { maxBytes: 1 << 30, contentLength: null });
  const got = { signature: new TextDecoder().decode(s.signature!), files: readdirSync(s.dir).sort() };
  rmSync(s.dir, { recursive: true });
  expect({
    ...got,
    unsigned: (await stageUpload(w.paths, new Blob([gz(tar([man(), script]))]).stream(), { maxBytes: 1 << 30, contentLength: null })).signature,
    third: await w.push(gz(tar([man(), script, { name: "signature.json", data: sig, mode: 0o644 }]))),
    big: await w.push(gz(tar([man(), { name: "signature.json", data: "x".repeat(5000), mode: 0o644 }, script]))),
  }).toEqual({
    signature: sig,
    files: ["decnet", "manifest.json"],
    unsigned: null,
    third: "bad_archive: refused: signature.json must be the archive's second entry, right after manifest.json",
    big: "bad_archive: signature.json is larger than 4096 bytes",
  });
});
