/**
 * `bun bench/trust-cost.ts [RELEASE_BINARY]`: what signed releases cost. The
 * time to verify (a trust document read and checked whole, then checkRelease
 * on signature.json), in µs, median of many runs; and the bytes signature.json
 * adds: raw, gzipped alone (a delta header), and to a release tarball.
 */
import { statSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { loadSigner, signReleaseFile } from "../src/core/release-sign.ts";
import { pack } from "../src/core/release.ts";
import { initTrust } from "../src/core/trust.ts";
import { checkRelease, serializeSignature, signRelease } from "../src/protocol/signature.ts";
import { readTrustDocument, serializeTrust } from "../src/protocol/trust.ts";
import { makeDoc, newKey, tempDir } from "../test/fixtures/trust.ts";

const RUNS = 3000;

function medianMicros(fn: () => unknown): number {
  for (let i = 0; i < 200; i++) fn();
  const t: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const a = Bun.nanoseconds();
    fn();
    t.push((Bun.nanoseconds() - a) / 1000);
  }
  t.sort((x, y) => x - y);
  return Math.round(t[Math.floor(RUNS / 2)]! * 10) / 10;
}

// A document as a fleet would hold it after a while: 4 signers, 12 revoked, a floor.
const root = newKey();
const signers = [newKey(), newKey(), newKey(), newKey()];
const revoked = Array.from({ length: 12 }, () => newKey().id);
const doc = makeDoc({ version: 17, roots: [root], signers: signers.map((key) => ({ key })), revoked, floor: "0.1.0" });
const docText = serializeTrust(doc);
const release = { id: "ab".repeat(32), version: "0.2.0", target: "linux-x64" };
const sigText = serializeSignature(signRelease(release, doc.signed.signers[0]!, signers[0]!.key));
const opts = { current: "0.1.0", allowDowngrade: false, now: new Date() };
const mustOk = (ok: boolean) => { if (!ok) throw new Error("bench input refused"); };
mustOk(checkRelease(doc, sigText, release, opts).ok);

const checkOnly = medianMicros(() => checkRelease(doc, sigText, release, opts));
const readDoc = medianMicros(() => readTrustDocument(docText));
const both = medianMicros(() => {
  const d = readTrustDocument(docText);
  if (d.ok) checkRelease(d.value, sigText, release, opts);
});

// Bytes added to a real release tarball: the same executable packed, then signed.
using tmp = tempDir("trust-bench");
const trustDir = join(tmp.path, "trust");
initTrust({ dir: trustDir });
const exe = process.argv[2];
let tarball: { file: string; size: number; added: number; signMs: number } | null = null;
if (exe) {
  const r = await pack({ file: exe, version: "0.2.0", info: {}, out: join(tmp.path, "r.tgz") });
  const t0 = performance.now();
  const s = await signReleaseFile(r.file, loadSigner({ trustDir }));
  tarball = { file: exe, size: r.size, added: s.bytesAdded, signMs: Math.round(performance.now() - t0) };
  if (statSync(r.file).size !== r.size + s.bytesAdded) throw new Error("size mismatch");
}

const result = {
  verify_us: { check_release: checkOnly, read_trust_document: readDoc, both },
  trust_document_bytes: Buffer.byteLength(docText),
  signature_json_bytes: { raw: Buffer.byteLength(sigText), gzip: gzipSync(sigText).length },
  tarball,
};
console.log(JSON.stringify(result, null, 2));
