/**
 * The release manifest (DESIGN §3) and the release id: sha256 over one line per
 * file, sorted by path, `<sha256> <mode 4 octal> <size> <path>\n`, so anyone can
 * recompute it with sha256sum.
 */
import { createHash } from "node:crypto";
import { z } from "zod";

/** 64 lowercase hex digits: a sha256, and so a release id. */
const HEX64 = /^[0-9a-f]{64}$/;
export const Sha256Hex = z.string().regex(HEX64, "a sha256 (64 hex digits)");
/** A release id (DESIGN §3): tables show its first 12 digits. */
export const ReleaseId = z.string().regex(HEX64, "a release id (64 hex digits)");
export const isReleaseId = (s: string) => HEX64.test(s);

/** Flat file names only: a release is `decnet` plus what the manifest lists. */
export const ReleasePath = z
  .string()
  .regex(/^[A-Za-z0-9._-]{1,128}$/, "a plain file name")
  .refine((p) => p !== "." && p !== ".." && p !== "manifest.json", "a reserved name");

/**
 * 0755-style. Refused, not stripped: setuid, setgid and sticky bits, and
 * write for group or others — a release file any local user could rewrite
 * would run as root at the next restart or rollback.
 */
export const FileMode = z.string().regex(/^0[0-7][0145][0145]$/, "four octal digits, not writable by group or others, without setuid/setgid/sticky bits");

export const ManifestFile = z.object({
  path: ReleasePath,
  mode: FileMode,
  size: z.number().int().nonnegative().max(2 ** 32),
  sha256: Sha256Hex,
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
  id: ReleaseId,
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

export interface ManifestInfo {
  version: string;
  git?: { sha: string; dirty: boolean };
  built_at?: string | null;
  target: string;
}

/** The manifest of `files`, with its release id: the one place a manifest is made. */
export function manifestFor(info: ManifestInfo, files: ManifestFile[]): Manifest {
  return {
    format: 1,
    name: "decnet",
    version: info.version,
    git: info.git ?? { sha: "unknown", dirty: false },
    built_at: info.built_at ?? null,
    target: info.target,
    files,
    id: releaseId(files),
  };
}

export type ParsedManifest = { ok: true; manifest: Manifest } | { ok: false; problem: string; issues?: string[] };

/**
 * Parses and checks a manifest's text: JSON, the schema, and that its id is
 * the one its files give. The one place a manifest is read.
 */
export function parseManifest(text: string): ParsedManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, problem: "manifest.json is not JSON" };
  }
  return checkManifest(raw);
}

export function checkManifest(raw: unknown): ParsedManifest {
  const r = Manifest.safeParse(raw);
  if (!r.success) return { ok: false, problem: "invalid manifest.json", issues: r.error.issues.slice(0, 5).map((i) => `${i.path.join(".")}: ${i.message}`) };
  const id = releaseId(r.data.files);
  if (id !== r.data.id) return { ok: false, problem: `release id mismatch: manifest says ${r.data.id}, its files give ${id}` };
  return { ok: true, manifest: r.data };
}
