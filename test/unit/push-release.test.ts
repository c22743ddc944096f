/**
 * PushRelease on files in a temp DECNET_HOME: an executable is copied and
 * hashed once with no tarball made; the tarball is packed on the first call
 * only and is a release tarball of the same id; a tarball given as the
 * artifact is sent as it is (its files unpacked beside it); a rollout's kept
 * dir reads back; a push dir left over an hour ago is cleared, a fresh one not.
 */
import { expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { openPushRelease, releaseFromExecutable, releaseFromTarball } from "../../src/core/push-release.ts";
import { readReleaseManifest } from "../../src/core/release.ts";
import { BlockHasher, BLOCK_SIZE } from "../../src/protocol/delta.ts";
import { serializeSignature, signRelease } from "../../src/protocol/signature.ts";
import { makeDoc, newKey } from "../fixtures/trust.ts";
import { useTempHome } from "../fixtures/temp-home.ts";

const home = useTempHome("decnet-pushrel-");

const random = (n: number) => { const b = new Uint8Array(n); for (let o = 0; o < n; o += 65536) crypto.getRandomValues(b.subarray(o, Math.min(n, o + 65536))); return b; };
const pushDirs = () => readdirSync(join(home, "cache", "push"));

test("an executable is hashed once with no tarball; the tarball is packed on the first call only; a tarball artifact is sent as it is; a kept dir reads back", async () => {
  const src = join(home, "exe");
  const bytes = random(5 * BLOCK_SIZE + 7);
  writeFileSync(src, bytes, { mode: 0o755 });
  const [root, signer] = [newKey(), newKey()];
  const cert = makeDoc({ roots: [root], signers: [{ key: signer }] }).signed.signers[0]!;
  const sign = (m: { id: string; version: string; target: string }) => serializeSignature(signRelease({ id: m.id, version: m.version, target: m.target }, cert, signer.key));
  const r = releaseFromExecutable({ file: src, version: "1.2.3", info: { target: "linux-x64" }, source: "artifact exe", sign });
  const before = readdirSync(r.dir).sort();
  const digests = new BlockHasher();
  digests.update(bytes);
  const [t1, t2] = await Promise.all([r.tarball(), r.tarball()]);
  const made = statSync(t1).mtimeMs;
  const t3 = await r.tarball();
  const once = t1 === t2 && t2 === t3 && statSync(t3).mtimeMs === made;
  const packedId = (await readReleaseManifest(t1)).id;
  const fromTar = await releaseFromTarball(t1, "artifact r.tar.gz");
  const tarDir = fromTar.dir;
  const sameBytes = readFileSync(await fromTar.tarball()).equals(readFileSync(t1));
  // For --full: only the manifest and signature are read; the files stay packed, and a kept dir of it reads back.
  const whole = await releaseFromTarball(t1, "artifact r.tar.gz", false);
  const wholeDir = readdirSync(whole.dir).sort();
  const wholeBack = openPushRelease(whole.dir, "x")!;
  const fullOnly = [whole.unpacked, wholeDir, whole.signer === signer.id, readFileSync(await whole.tarball()).equals(readFileSync(t1)), wholeBack.unpacked, wholeBack.manifest.id === r.manifest.id];
  whole.drop();
  const kept = r.moveTo(join(home, "kept"));
  const back = openPushRelease(join(home, "kept"), "artifact exe")!;
  expect({
    before,
    hashed: [r.hashed.decnet!.size, Buffer.from(r.hashed.decnet!.digests).equals(digests.finish()), r.size, r.manifest.version, r.signer === signer.id],
    once,
    tarball: packedId === r.manifest.id,
    fromTar: [fromTar.manifest.id === r.manifest.id, fromTar.signature === r.signature, sameBytes, readFileSync(join(tarDir, "decnet")).equals(bytes), (statSync(join(tarDir, "decnet")).mode & 0o777).toString(8)],
    kept: [existsSync(r.dir), kept.dir, back.manifest.id === r.manifest.id, back.signature === r.signature, await back.tarball() === join(home, "kept", "release.tar.gz")],
    missing: openPushRelease(join(home, "nothing"), "x"),
    fullOnly,
  }).toEqual({
    before: ["decnet", "manifest.json", "signature.json"],
    hashed: [bytes.byteLength, true, bytes.byteLength, "1.2.3", true],
    once: true,
    tarball: true,
    fromTar: [true, true, true, true, "755"],
    kept: [false, join(home, "kept"), true, true, true],
    missing: null,
    fullOnly: [false, ["manifest.json", "release.tar.gz", "signature.json"], true, true, false, true],
  });
  fromTar.drop();
});

test("a tarball whose file does not match its manifest is refused, and leaves no push dir; push dirs older than an hour are cleared", async () => {
  const src = join(home, "exe2");
  writeFileSync(src, random(1000), { mode: 0o755 });
  const r = releaseFromExecutable({ file: src, version: "1.0.0", info: { target: "linux-x64" }, source: "x" });
  writeFileSync(join(r.dir, "decnet"), random(1000));
  const bad = join(home, "bad.tar.gz");
  const { writeTarball } = await import("../../src/lib/tarball.ts");
  await writeTarball(bad, r.dir, ["manifest.json", "decnet"]);
  r.drop();
  const dirsBefore = pushDirs().sort();
  const refused = await releaseFromTarball(bad, "bad").then(() => "accepted", (e: Error) => e.message);
  const dirsAfter = pushDirs().sort();
  const old = join(home, "cache", "push", "push-old");
  mkdirSync(old);
  const hourAgo = new Date(Date.now() - 2 * 3600_000);
  utimesSync(old, hourAgo, hourAgo);
  const fresh = join(home, "cache", "push", "push-fresh");
  mkdirSync(fresh);
  const next = releaseFromExecutable({ file: src, version: "1.0.0", info: { target: "linux-x64" }, source: "x" });
  expect({ refused: refused.includes("does not match its manifest"), left: dirsAfter.length === dirsBefore.length ? "none" : dirsAfter, old: existsSync(old), fresh: existsSync(fresh) }).toEqual({
    refused: true,
    left: "none",
    old: false,
    fresh: true,
  });
  next.drop();
});
