/**
 * The hostile-input gate for a whole release: stream the uploaded tarball
 * into staging entry by entry, refusing the whole upload on anything not
 * exactly as the manifest (its first entry) says. Nothing is written
 * outside staging; the staging scope removes it on any failure.
 */
import { MANIFEST_MAX_BYTES, type Manifest, type ManifestFile, parseManifest } from "../../protocol/manifest.ts";
import { RELEASE_MANIFEST, type SlotPaths } from "../../lib/paths.ts";
import { readTarball, type RawEntry } from "../../lib/tarball.ts";
import type { Digests } from "./block-index.ts";
import type { FilePoints } from "./resume-cache.ts";
import { bad, limited, MAX_RELEASE_BYTES, stage, type StageOptions, type Staged, uploadBody } from "./staging.ts";
import { VerifiedFile } from "./verified-file.ts";
import { roomForRelease } from "./disk-room.ts";

/** Why a raw tar entry is refused before its data is read, or null. */
function entryProblem(e: RawEntry): string | null {
  if (e.path.startsWith("/")) return `absolute path ${e.path}`;
  if (e.path.split("/").includes("..")) return `path ${e.path} escapes the release`;
  if (e.type === "SymbolicLink" || e.type === "Link") return `${e.type === "Link" ? "hard link" : "symlink"} ${e.path} -> ${e.linkpath}`;
  if (e.type !== "File" && e.type !== "OldFile" && e.type !== "ContiguousFile") return `${e.type} entry ${e.path}`;
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

export async function stageUpload(paths: SlotPaths, body: ReadableStream<Uint8Array> | null, o: StageOptions): Promise<Staged> {
  // Disk preflight first (disk-room.ts): the manifest is read ahead, nothing written before the check.
  const src = await roomForRelease(paths, uploadBody(body, o, "release .tar.gz"), o);
  return stage(paths, o, "archive", async (staging) => {
    const count = { n: 0 };
    let manifest: Manifest | null = null;
    let manifestText = "";
    const done = new Map<string, ManifestFile>();
    const blocks: Digests = {};
    const points: FilePoints = {};
    await readTarball(limited(src, o.maxBytes, count, o.signal), (e) => {
      const problem = entryProblem(e);
      if (problem) throw bad(`refused: ${problem}`);
      if (!manifest) {
        if (e.path !== RELEASE_MANIFEST) throw bad(`the first entry must be ${RELEASE_MANIFEST}, got ${e.path}`);
        if (e.size > MANIFEST_MAX_BYTES) throw bad(`${RELEASE_MANIFEST} is larger than ${MANIFEST_MAX_BYTES} bytes`);
        const chunks: Uint8Array[] = [];
        e.onData((c) => chunks.push(c));
        e.onEnd(() => {
          manifestText = Buffer.concat(chunks).toString("utf8");
          manifest = checkManifestText(manifestText);
        });
        return;
      }
      const m: Manifest = manifest;
      const want = m.files.find((f) => f.path === e.path);
      if (!want) throw bad(`refused: ${e.path} is not listed in the manifest`);
      if (done.has(e.path)) throw bad(`refused: ${e.path} appears twice`);
      if (e.size !== want.size) throw bad(`size mismatch for ${e.path}: archive ${e.size}, manifest ${want.size}`);
      const mode = (e.mode & 0o777).toString(8).padStart(4, "0");
      if (mode !== want.mode) throw bad(`mode mismatch for ${e.path}: archive ${mode}, manifest ${want.mode}`);
      const file = new VerifiedFile(staging, want);
      e.onData((c) => file.write(c));
      e.onEnd(() => {
        ({ digests: blocks[e.path]!, points: points[e.path]! } = file.finish());
        done.set(e.path, want);
      });
    });
    const m = manifest as Manifest | null;
    if (!m) throw bad(`archive has no ${RELEASE_MANIFEST}`);
    const missing = m.files.filter((f) => !done.has(f.path)).map((f) => f.path);
    if (missing.length) throw bad(`archive ends before ${missing.join(", ")}`);
    staging.complete(m, manifestText);
    const size = m.files.reduce((s, f) => s + f.size, 0);
    return { dir: staging.dir, manifest: m, blocks, points, signature: null, report: { mode: "full", bytes_received: count.n, bytes_written: size, bytes_in_place: 0, bytes_resumed: 0 } };
  });
}
