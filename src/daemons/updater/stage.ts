/**
 * The hostile-input gate for a whole release: stream the uploaded tarball
 * into staging entry by entry, refusing the whole upload on anything not
 * exactly as the manifest (its first entry) says; a signed release's
 * signature.json (its second entry) is handed on for the trust gate. Decided on the raw tar
 * headers: only regular files (and the manifest) pass; the sizes a header
 * declares must be the manifest's before a byte is written; reading stops
 * at end-of-archive. Nothing is written outside staging; the staging scope
 * removes it on any failure.
 */
import { MANIFEST_MAX_BYTES, type Manifest, type ManifestFile, parseManifest } from "../../protocol/manifest.ts";
import { SIGNATURE_FILE, SIGNATURE_MAX_BYTES } from "../../protocol/signature.ts";
import { RELEASE_MANIFEST, type SlotPaths } from "../../lib/paths.ts";
import { paxRecords, type TarHeader, TarReader } from "../../lib/tar-reader.ts";
import type { Digests } from "./block-index.ts";
import type { FilePoints } from "./resume-cache.ts";
import { bad, MAX_RELEASE_BYTES, plainChunks, stage, type StageOptions, type Staged, uploadBody } from "./staging.ts";
import { VerifiedFile } from "./verified-file.ts";
import { roomForRelease } from "./disk-room.ts";
import { manifestTargetCheck } from "./target-gate.ts";

/** A tar writer pads its output to its record size (GNU tar: 10 KiB); more than this after the end is not padding. */
const MAX_PADDING = 1024 * 1024;
/** A pax header for a long file name is ~200 bytes. */
const PAX_MAX = 4096;
/**
 * Pax keys a release entry may carry: node-tar (`decnet release pack`) writes
 * path, mtime and size for names over 100 bytes. Anything else (linkpath,
 * uid, sparse maps, vendor keys) changes what the entry is: refused.
 */
const PAX_KEYS = new Set(["path", "size", "mtime", "atime", "ctime"]);
/** Everything but the data a release may declare: per file a header, a pax header and padding; the manifest; the end. */
const OVERHEAD = 64 * (512 + 512 + PAX_MAX + 512) + MANIFEST_MAX_BYTES + SIGNATURE_MAX_BYTES + 2048 + MAX_PADDING;

const isRegular = (h: TarHeader) => h.typeflag === "0" || h.typeflag === "\0";

/** Why a raw tar entry is refused before its data is read, or null. */
function entryProblem(e: TarHeader): string | null {
  if (!isRegular(e)) return `${e.kind} entry ${e.path}${e.linkpath ? ` -> ${e.linkpath}` : ""}`;
  if (e.path.startsWith("/")) return `absolute path ${e.path}`;
  if (e.path.split("/").includes("..")) return `path ${e.path} escapes the release`;
  if (e.mode & 0o7000) return `${e.path} asks for setuid/setgid/sticky bits (mode ${(e.mode & 0o7777).toString(8)})`;
  if (e.mode & 0o022) return `${e.path} would be writable by group or others (mode ${(e.mode & 0o7777).toString(8).padStart(4, "0")})`;
  return null;
}

/** The manifest entry's text, checked: the schema, the release id, the size a release may have. */
function checkManifestText(text: string): Manifest {
  const r = parseManifest(text);
  if (!r.ok) throw bad(r.issues?.length ? `${r.problem}: ${r.issues[0]}` : r.problem, r.issues);
  const total = r.manifest.files.reduce((s, f) => s + f.size, 0);
  if (total > MAX_RELEASE_BYTES) throw bad(`release declares ${total} bytes, more than ${MAX_RELEASE_BYTES}`);
  return r.manifest;
}

/** The next entry with its pax header applied (path only; a size must agree), or null at the end. */
async function nextEntry(tar: TarReader): Promise<TarHeader | null> {
  const h = await tar.next();
  if (!h || h.typeflag !== "x") return h;
  if (h.size > PAX_MAX) throw bad(`refused: a pax header of ${h.size} bytes (at most ${PAX_MAX})`);
  const chunks: Uint8Array[] = [];
  await tar.data((c) => chunks.push(c));
  const records = paxRecords(Buffer.concat(chunks));
  const e = await tar.next();
  if (!e || !isRegular(e)) throw bad(`refused: a pax header not followed by a regular file${e ? ` (${e.kind} ${e.path})` : ""}`);
  for (const [key, value] of records) {
    if (!PAX_KEYS.has(key)) throw bad(`refused: a pax header for ${e.path} sets ${key}, which a release entry never needs`);
    if (key === "path") e.path = value;
    if (key === "size" && value !== String(e.size)) throw bad(`refused: a pax header says ${e.path} has ${value} bytes, its tar header ${e.size}`);
  }
  return e;
}

export async function stageUpload(paths: SlotPaths, body: ReadableStream<Uint8Array> | null, o: StageOptions): Promise<Staged> {
  // Disk preflight first (disk-room.ts): the manifest is read ahead, nothing written before the check.
  const src = await roomForRelease(paths, uploadBody(body, o, "release .tar.gz"), o);
  return stage(paths, o, "archive", async (staging) => {
    const count = { n: 0 };
    const tar = new TarReader(plainChunks(staging, src, o, count, MAX_RELEASE_BYTES + OVERHEAD, "archive"));

    const first = await tar.next();
    if (!first) throw bad(`archive has no ${RELEASE_MANIFEST}`);
    if (!isRegular(first) || first.path !== RELEASE_MANIFEST) throw bad(`the first entry must be ${RELEASE_MANIFEST}, got ${isRegular(first) ? first.path : `a ${first.kind} (${first.path})`}`);
    if (first.size > MANIFEST_MAX_BYTES) throw bad(`${RELEASE_MANIFEST} is larger than ${MANIFEST_MAX_BYTES} bytes`);
    const chunks: Uint8Array[] = [];
    await tar.data((c) => chunks.push(c));
    const manifestText = Buffer.concat(chunks).toString("utf8");
    const m = checkManifestText(manifestText);
    if (o.target) manifestTargetCheck(m, o.target);

    const done = new Map<string, ManifestFile>();
    const blocks: Digests = {};
    const points: FilePoints = {};
    let signature: Uint8Array | null = null;
    let second = true;
    for (let e = await nextEntry(tar); e; e = await nextEntry(tar), second = false) {
      const problem = entryProblem(e);
      if (problem) throw bad(`refused: ${problem}`);
      // A signed release's signature.json is its second entry (core/release-sign.ts), read, never written.
      if (e.path === SIGNATURE_FILE && !m.files.some((f) => f.path === SIGNATURE_FILE)) {
        if (!second) throw bad(`refused: ${SIGNATURE_FILE} must be the archive's second entry, right after ${RELEASE_MANIFEST}`);
        if (e.size > SIGNATURE_MAX_BYTES) throw bad(`${SIGNATURE_FILE} is larger than ${SIGNATURE_MAX_BYTES} bytes`);
        const parts: Uint8Array[] = [];
        await tar.data((c) => parts.push(c));
        signature = new Uint8Array(Buffer.concat(parts));
        continue;
      }
      const want = m.files.find((f) => f.path === e!.path);
      if (!want) throw bad(`refused: ${e.path} is not listed in the manifest`);
      if (done.has(e.path)) throw bad(`refused: ${e.path} appears twice`);
      // Declared sizes are the manifest's before a byte is written.
      if (e.size !== want.size) throw bad(`size mismatch for ${e.path}: archive ${e.size}, manifest ${want.size}`);
      const mode = (e.mode & 0o777).toString(8).padStart(4, "0");
      if (mode !== want.mode) throw bad(`mode mismatch for ${e.path}: archive ${mode}, manifest ${want.mode}`);
      const file = new VerifiedFile(staging, want);
      await tar.data((c) => file.write(c));
      ({ digests: blocks[e.path]!, points: points[e.path]! } = file.finish());
      done.set(e.path, want);
    }
    const missing = m.files.filter((f) => !done.has(f.path)).map((f) => f.path);
    if (missing.length) throw bad(`archive ends before ${missing.join(", ")}`);
    await tar.end(MAX_PADDING);
    staging.complete(m, manifestText);
    const size = m.files.reduce((s, f) => s + f.size, 0);
    return { dir: staging.dir, manifest: m, blocks, points, signature, report: { mode: "full", bytes_received: count.n, bytes_written: size, bytes_in_place: 0, bytes_resumed: 0 } };
  });
}
