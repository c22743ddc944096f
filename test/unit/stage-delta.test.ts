/**
 * Delta staging in process, on temp dirs: a release rebuilt from a base's
 * blocks and the literals the master planned, its hashing resumed after the
 * unchanged prefix, a held spare rewritten in place only where it provably
 * holds the base's bytes, a damaged base refused as delta_unavailable, and
 * every failure leaving no staging and no open file behind.
 */
import { expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deltaBody, planDelta } from "../fixtures/delta1.ts";
import { commit } from "../../src/daemons/updater/install.ts";
import { ReleaseSet } from "../../src/daemons/updater/release-set.ts";
import { stageDelta } from "../../src/daemons/updater/stage-delta.ts";
import { stageUpload } from "../../src/daemons/updater/stage.ts";
import { installPaths } from "../../src/lib/paths.ts";
import { writeTarball } from "../../src/lib/tarball.ts";
import { manifestFor } from "../../src/protocol/manifest.ts";
import { sha256 } from "../fixtures/tar.ts";

const MiB = 1 << 20;

/** Bytes that compress badly and differ everywhere: a stand-in for an executable. */
function noise(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** `base` with its tail from `at` replaced by other bytes, `grow` longer. */
const changedTail = (base: Uint8Array, at: number, grow: number, seed: number) => Buffer.concat([base.subarray(0, at), noise(base.byteLength - at + grow, seed)]);

async function tarball(dir: string, name: string, exe: Uint8Array, version: string) {
  const src = join(dir, `src-${name}`);
  const { mkdirSync } = await import("node:fs");
  mkdirSync(src);
  writeFileSync(join(src, "decnet"), exe, { mode: 0o755 });
  const m = manifestFor({ version, target: "linux-x64" }, [{ path: "decnet", mode: "0755", size: exe.byteLength, sha256: sha256(exe) }]);
  writeFileSync(join(src, "manifest.json"), JSON.stringify(m));
  const file = join(dir, `${name}.tar.gz`);
  await writeTarball(file, src, ["manifest.json", "decnet"]);
  return { file, manifest: m };
}

const opts = (n: number) => ({ maxBytes: 1 << 30, contentLength: n });

/** fds of this process on files under `dir` that are already deleted. */
const deletedFds = (dir: string) =>
  readdirSync("/proc/self/fd").filter((fd) => {
    try {
      const l = readlinkSync(`/proc/self/fd/${fd}`);
      return l.startsWith(dir) && l.endsWith("(deleted)");
    } catch {
      return false;
    }
  }).length;

async function setup() {
  const dir = mkdtempSync(join(tmpdir(), "decnet-stage-delta-"));
  const set = new ReleaseSet(installPaths(join(dir, "install")));
  /** Installs a tarball into the set as a kept release, as the install sequence does. */
  const install = async (t: { file: string }) => {
    const s = await stageUpload(set.paths, Bun.file(t.file).stream(), opts(Bun.file(t.file).size));
    commit(set.paths, s);
    set.keep(s.manifest, s);
    return s.manifest.id;
  };
  return { dir, set, install, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

test("a delta rebuilds the release from the base and the literals, resuming the hash after the unchanged prefix", async () => {
  using w = await setup();
  const a = noise(3 * MiB + 5000, 1);
  const n = changedTail(a, 3 * MiB - 40_000, 70_000, 2);
  const base = await w.install(await tarball(w.dir, "a", a, "1.0.0"));
  const next = await tarball(w.dir, "n", n, "1.0.1");
  const plan = await planDelta(next.file, next.manifest, (await w.set.blocks(base))!);
  const body = await deltaBody(plan!);
  const s = await stageDelta(w.set.paths, w.set.spare, await w.set.base(base), base, new Blob([body]).stream(), opts(body.byteLength));
  expect({
    bytes: Buffer.compare(readFileSync(join(s.dir, "decnet")), n) === 0,
    id: s.manifest.id,
    report: { ...s.report, bytes_received: s.report.bytes_received === body.byteLength },
    small: body.byteLength < 200_000,
  }).toEqual({
    bytes: true,
    id: next.manifest.id,
    report: { mode: "delta", bytes_received: true, bytes_written: n.byteLength, bytes_in_place: 0, bytes_resumed: 2 * MiB },
    small: true,
  });
});

test("a held spare keeps the MiB it provably holds; a damaged base is delta_unavailable; failures leave no staging and no open file", async () => {
  using w = await setup();
  const a = noise(4 * MiB, 3);
  const older = changedTail(a, 3 * MiB + 100, 0, 4); // the pruned release: same first 3 MiB
  const n = changedTail(a, 4 * MiB - 30_000, 10_000, 5);
  const old = await w.install(await tarball(w.dir, "old", older, "0.9.0"));
  const base = await w.install(await tarball(w.dir, "a", a, "1.0.0"));
  w.set.mark(old, "good", new Date(1));
  w.set.mark(base, "good", new Date(2));
  w.set.flip(base, null);
  const pruned = w.set.prune(1);
  const spareBefore = existsSync(w.set.paths.spare);
  const next = await tarball(w.dir, "n", n, "1.0.1");
  const body = await deltaBody((await planDelta(next.file, next.manifest, (await w.set.blocks(base))!))!);
  const stageIt = async (b: Uint8Array) => stageDelta(w.set.paths, w.set.spare, await w.set.base(base), base, new Blob([b]).stream(), opts(b.byteLength));
  const s = await stageIt(body);
  const rebuilt = Buffer.compare(readFileSync(join(s.dir, "decnet")), n) === 0;
  rmSync(s.dir, { recursive: true });

  // Cut short mid-literals: bad_archive, nothing left.
  const truncated = await stageIt(body.subarray(0, body.byteLength - 200)).catch((e) => e.code);
  // A byte of the base flipped inside the prefix the delta would resume over.
  const exe = join(w.set.paths.release(base), "decnet");
  const bytes = readFileSync(exe);
  bytes[MiB + 7] = bytes[MiB + 7]! ^ 0xff;
  writeFileSync(exe, bytes);
  const damaged = await stageIt(body).catch((e) => [e.code, e.message]);
  expect({
    pruned: [pruned, spareBefore],
    report: s.report,
    rebuilt,
    truncated,
    damaged,
    staging: readdirSync(w.set.paths.releases).filter((x) => x.startsWith(".staging")),
    deletedFds: deletedFds(w.dir),
  }).toEqual({
    pruned: [[old], true],
    // Three whole MiB were the spare's already; the prefix resumed is every whole MiB before the change.
    report: { mode: "delta", bytes_received: body.byteLength, bytes_written: n.byteLength - 3 * MiB, bytes_in_place: 3 * MiB, bytes_resumed: 3 * MiB },
    rebuilt: true,
    truncated: "bad_archive",
    damaged: ["delta_unavailable", "base file decnet has changed on disk since it was installed (MiB 1)"],
    staging: [],
    deletedFds: 0,
  });
});

test("a delta cut short or corrupt says which, and a deeply nested header is refused before it is parsed", async () => {
  using w = await setup();
  const a = noise(MiB + 100, 7);
  const base = await w.install(await tarball(w.dir, "a", a, "1.0.0"));
  const next = await tarball(w.dir, "n", changedTail(a, MiB - 1000, 50, 8), "1.0.1");
  const body = await deltaBody((await planDelta(next.file, next.manifest, (await w.set.blocks(base))!))!);
  const plain = Bun.gunzipSync(body as Uint8Array<ArrayBuffer>);
  const headerEnd = plain.indexOf(0x0a);
  const stageIt = async (b: Uint8Array) =>
    stageDelta(w.set.paths, w.set.spare, await w.set.base(base), base, new Blob([b]).stream(), opts(b.byteLength)).then(
      (s) => {
        rmSync(s.dir, { recursive: true });
        return "staged";
      },
      (e) => `${e.code}: ${e.message}`,
    );
  const corrupt = body.slice();
  corrupt.fill(0x41, 20, 60);
  // 10^5-deep nesting in 200 kB: refused from a linear scan, not by the parser's stack.
  const deep = Bun.gzipSync(new TextEncoder().encode(`${"[".repeat(100_000)}${"]".repeat(100_000)}\n`));
  const t0 = performance.now();
  const nested = await stageIt(deep);
  const nestedMs = performance.now() - t0;
  expect({
    whole: await stageIt(body),
    truncatedGzip: await stageIt(body.subarray(0, body.byteLength - 100)),
    insideHeader: await stageIt(Bun.gzipSync(plain.subarray(0, headerEnd - 10))),
    insideLiterals: await stageIt(Bun.gzipSync(plain.subarray(0, plain.byteLength - 20))),
    corrupt: await stageIt(corrupt),
    notJson: await stageIt(Bun.gzipSync(new TextEncoder().encode("{not json}\n"))),
    nested,
    nestedFast: nestedMs < 200,
    staging: readdirSync(w.set.paths.releases).filter((x) => x.startsWith(".staging")),
    deletedFds: deletedFds(w.dir),
  }).toEqual({
    whole: "staged",
    truncatedGzip: "bad_archive: truncated delta: the gzip stream ends early",
    insideHeader: "bad_archive: truncated delta: it ends inside its header",
    insideLiterals: "bad_archive: truncated delta: it ends 20 bytes before the end of its literals for decnet",
    corrupt: "bad_archive: corrupt delta: not a valid gzip stream (inflate failed)",
    notJson: "bad_archive: delta header is not JSON",
    nested: "bad_archive: delta header nests deeper than 16 levels",
    nestedFast: true,
    staging: [],
    deletedFds: 0,
  });
});
