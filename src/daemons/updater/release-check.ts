/**
 * Is a kept release still what was verified when it was installed? Asked
 * before any of its code runs again (a rollback, a revert, recovery, the
 * agent's start): the dir and every file as the manifest says — plain file,
 * size, mode, owned by this user, not writable by others — and every file's
 * whole sha256. Those runs are rare (a push runs the copy it just verified),
 * so the check is always the full one: ~0.25 s for a 110 MB release here.
 */
import { lstatSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type Manifest, MANIFEST_MAX_BYTES, parseManifest } from "../../protocol/manifest.ts";
import { RELEASE_MANIFEST } from "../../lib/paths.ts";

const euid = () => (typeof process.geteuid === "function" ? process.geteuid() : 0);
const octal = (m: number) => (m & 0o7777).toString(8).padStart(4, "0");

/** What is wrong with the release `id` in `dir`, or null when it is intact. */
export async function releaseProblem(dir: string, id: string): Promise<string | null> {
  try {
    const st = lstatSync(dir);
    if (!st.isDirectory()) return "is not a directory";
    if (st.uid !== euid()) return `is owned by uid ${st.uid}`;
    if (st.mode & 0o022) return `is writable by group or others (mode ${octal(st.mode)})`;
    const m = readManifest(join(dir, RELEASE_MANIFEST));
    if (typeof m === "string") return m;
    if (m.id !== id) return `its manifest names release ${m.id.slice(0, 12)}`;
    for (const f of m.files) {
      const path = join(dir, f.path);
      const fst = lstatSync(path);
      if (!fst.isFile()) return `${f.path} is not a plain file`;
      if (fst.uid !== euid()) return `${f.path} is owned by uid ${fst.uid}`;
      if (octal(fst.mode) !== f.mode) return `${f.path} has mode ${octal(fst.mode)}, the manifest says ${f.mode}`;
      if (fst.size !== f.size) return `${f.path} is ${fst.size} bytes, the manifest says ${f.size}`;
      const h = new Bun.CryptoHasher("sha256");
      for await (const chunk of Bun.file(path).stream()) h.update(chunk);
      if (h.digest("hex") !== f.sha256) return `${f.path} no longer has the sha256 its manifest says`;
    }
    return null;
  } catch (e) {
    return `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
  }
}

function readManifest(file: string): Manifest | string {
  const st = lstatSync(file);
  if (!st.isFile()) return `${RELEASE_MANIFEST} is not a plain file`;
  if (st.size > MANIFEST_MAX_BYTES) return `${RELEASE_MANIFEST} is too large`;
  const r = parseManifest(readFileSync(file, "utf8"));
  return r.ok ? r.manifest : `${RELEASE_MANIFEST}: ${r.problem}`;
}
