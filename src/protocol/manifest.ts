/**
 * The release manifest (DESIGN §3) and the release id: sha256 over one line per
 * file, sorted by path, `<sha256> <mode 4 octal> <size> <path>\n`, so anyone can
 * recompute it with sha256sum.
 */
import { createHash } from "node:crypto";
import { z } from "zod";

/** Flat file names only: a release is `decnet` plus what the manifest lists. */
export const ReleasePath = z
  .string()
  .regex(/^[A-Za-z0-9._-]{1,128}$/, "a plain file name")
  .refine((p) => p !== "." && p !== ".." && p !== "manifest.json", "a reserved name");

/** 0755-style; setuid, setgid and sticky bits are never installed. */
export const FileMode = z.string().regex(/^0[0-7]{3}$/, "four octal digits without setuid/setgid/sticky bits");

export const ManifestFile = z.object({
  path: ReleasePath,
  mode: FileMode,
  size: z.number().int().nonnegative().max(2 ** 32),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});
export type ManifestFile = z.infer<typeof ManifestFile>;

export const Manifest = z.object({
  format: z.literal(1),
  name: z.literal("decnet"),
  version: z.string().min(1).max(64),
  git: z.object({ sha: z.string().max(64), dirty: z.boolean() }),
  built_at: z.string().nullable(),
  target: z.string().max(64),
  files: z
    .array(ManifestFile)
    .min(1)
    .max(64)
    .refine((fs) => new Set(fs.map((f) => f.path)).size === fs.length, "duplicate paths")
    .refine((fs) => fs.some((f) => f.path === "decnet"), "no `decnet` executable"),
  id: z.string().regex(/^[0-9a-f]{64}$/),
});
export type Manifest = z.infer<typeof Manifest>;

export const MANIFEST_MAX_BYTES = 64 * 1024;

export function releaseIdText(files: ManifestFile[]): string {
  return [...files]
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
    .map((f) => `${f.sha256} ${f.mode} ${f.size} ${f.path}\n`)
    .join("");
}

export function releaseId(files: ManifestFile[]): string {
  return createHash("sha256").update(releaseIdText(files)).digest("hex");
}
