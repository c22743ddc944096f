/**
 * A release set on disk: releases/<id>, the current and previous symlinks
 * (flipped by symlink + rename), history.json (installed_at and status per
 * release) and keep-N pruning. Serves the agent's set and the updater's own.
 */
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync } from "node:fs";
import { basename } from "node:path";
import { BLOCK_SIZE, BlockHasher, BlocksResponse } from "../../protocol/delta.ts";
import { z } from "zod";
import { type Manifest, Manifest as ManifestSchema } from "../../protocol/manifest.ts";
import type { ReleaseInfo, ReleasesResponse } from "../../protocol/updater.ts";
import { replaceSymlink, writeFileAtomic } from "../../lib/atomic.ts";
import { RELEASE_MANIFEST, type SlotPaths } from "../../lib/paths.ts";
import { readLink } from "../../lib/procfs.ts";
import { join } from "node:path";
import { ResumableHash, type ResumePoints } from "./resumable-hash.ts";
import type { Staged } from "./stage.ts";

/** The pruned release's block index, kept inside the spare. */
const SPARE_INDEX = "blocks.json";

const History = z.record(z.string(), z.object({ installed_at: z.string(), status: z.enum(["good", "failed", "unknown"]) }));
type History = z.infer<typeof History>;

export class Slots {
  /** Resume points per release and file, in memory only (see resumable-hash.ts). */
  private points = new Map<string, Record<string, ResumePoints>>();

  constructor(readonly paths: SlotPaths) {}

  private linkId(link: string): string | null {
    const t = readLink(link);
    return t ? basename(t) : null;
  }
  current(): string | null {
    return this.linkId(this.paths.current);
  }
  previous(): string | null {
    return this.linkId(this.paths.previous);
  }

  /** Points a slot at releases/<id> (relative, so the install dir can move), or removes it. */
  private set(link: string, id: string | null): void {
    if (id) replaceSymlink(link, join("releases", id));
    else try { unlinkSync(link); } catch {}
  }
  setCurrent(id: string | null): void {
    this.set(this.paths.current, id);
  }
  setPrevious(id: string | null): void {
    this.set(this.paths.previous, id);
  }

  has(id: string): boolean {
    return existsSync(join(this.paths.release(id), RELEASE_MANIFEST));
  }

  manifest(id: string): Manifest | null {
    try {
      return ManifestSchema.parse(JSON.parse(readFileSync(join(this.paths.release(id), RELEASE_MANIFEST), "utf8")));
    } catch {
      return null;
    }
  }

  ids(): string[] {
    if (!existsSync(this.paths.releases)) return [];
    return readdirSync(this.paths.releases).filter((n) => /^[0-9a-f]{64}$/.test(n));
  }

  /** Records the block index computed while staging `id`. */
  saveBlocks(id: string, blocks: Record<string, Uint8Array>): void {
    const m = this.manifest(id);
    if (!m) return;
    const files: BlocksResponse["files"] = {};
    for (const f of m.files) {
      const b = blocks[f.path];
      if (b) files[f.path] = { size: f.size, hashes: Buffer.from(b).toString("base64") };
    }
    mkdirSync(this.paths.blocksDir, { recursive: true, mode: 0o700 });
    // Not forced to disk: blocks() recomputes an index that a power cut lost.
    writeFileAtomic(this.paths.blocks(id), JSON.stringify({ release: id, block_size: BLOCK_SIZE, files }), 0o600, { durable: false });
  }

  /** Keeps what staging `id` computed: its block index (on disk) and resume points (in memory). */
  keepIndex(id: string, staged: Pick<Staged, "blocks" | "points">): void {
    this.saveBlocks(id, staged.blocks);
    this.points.set(id, staged.points); // the copy just verified is the one kept (install.ts commit)
  }

  resumePoints(id: string, path: string): ResumePoints | null {
    return this.points.get(id)?.[path] ?? null;
  }

  /**
   * Hashes the files of a kept release again for their resume points (a
   * restart loses them). Also a check: a file that no longer matches its
   * manifest is returned, and gets none.
   */
  async warm(id: string): Promise<string[]> {
    const m = this.has(id) && !this.points.has(id) ? this.manifest(id) : null;
    if (!m) return [];
    const points: Record<string, ResumePoints> = {};
    const damaged: string[] = [];
    for (const f of m.files) {
      const h = new ResumableHash();
      for await (const chunk of Bun.file(join(this.paths.release(id), f.path)).stream()) h.update(chunk);
      if (h.hex() === f.sha256 && h.bytes === f.size) points[f.path] = h.points();
      else damaged.push(f.path);
    }
    // An install while this ran has already kept points from a fresh verification.
    if (!this.points.has(id)) this.points.set(id, points);
    return damaged;
  }

  /** The block index of a kept release: from the record, or computed from its files. */
  async blocks(id: string): Promise<BlocksResponse | null> {
    const m = this.has(id) ? this.manifest(id) : null;
    if (!m) return null;
    try {
      const cached = BlocksResponse.parse(JSON.parse(readFileSync(this.paths.blocks(id), "utf8")));
      if (cached.block_size === BLOCK_SIZE) return cached;
    } catch {}
    const computed: Record<string, Uint8Array> = {};
    for (const f of m.files) {
      const h = new BlockHasher();
      for await (const chunk of Bun.file(join(this.paths.release(id), f.path)).stream()) h.update(chunk);
      computed[f.path] = h.finish();
    }
    this.saveBlocks(id, computed);
    return BlocksResponse.parse(JSON.parse(readFileSync(this.paths.blocks(id), "utf8")));
  }

  /** Leftover staging dirs: only ever from an interrupted operation. */
  removeStaging(): number {
    if (!existsSync(this.paths.releases)) return 0;
    const left = readdirSync(this.paths.releases).filter((n) => n.startsWith(".staging-"));
    for (const n of left) rmSync(join(this.paths.releases, n), { recursive: true, force: true });
    return left.length;
  }

  private history(): History {
    try {
      return History.parse(JSON.parse(readFileSync(join(this.paths.root, "history.json"), "utf8")));
    } catch {
      return {};
    }
  }
  private saveHistory(h: History, durable = true): void {
    writeFileAtomic(join(this.paths.root, "history.json"), `${JSON.stringify(h, null, 1)}\n`, 0o600, { durable });
  }
  mark(id: string, status: "good" | "failed" | "unknown", now = new Date()): void {
    const h = this.history();
    h[id] = { installed_at: h[id]?.installed_at ?? now.toISOString(), status };
    // "unknown" (just before a switch) is not forced to disk: after a power
    // cut the journal's recovery marks that release failed anyway.
    this.saveHistory(h, status !== "unknown");
  }

  list(): ReleasesResponse {
    const h = this.history();
    const current = this.current();
    const previous = this.previous();
    const releases: ReleaseInfo[] = this.ids().map((id) => {
      const m = this.manifest(id);
      return {
        id,
        version: m?.version ?? null,
        git: m?.git ?? null,
        installed_at: h[id]?.installed_at ?? null,
        status: h[id]?.status ?? "unknown",
        current: id === current,
        previous: id === previous,
      };
    });
    releases.sort((a, b) => (b.installed_at ?? "").localeCompare(a.installed_at ?? ""));
    return { current, previous, releases };
  }

  /**
   * Keeps current, previous, the newest `keep` good releases and the newest
   * failed one (for forensics); removes the rest. The newest removed one
   * becomes the spare (see takeSpare), replacing the last.
   */
  prune(keep: number): string[] {
    const { releases, current, previous } = this.list();
    const keepIds = new Set([current, previous].filter(Boolean) as string[]);
    for (const r of releases.filter((r) => r.status === "good").slice(0, keep)) keepIds.add(r.id);
    const failed = releases.find((r) => r.status === "failed");
    if (failed) keepIds.add(failed.id);
    const removed = releases.filter((r) => !keepIds.has(r.id)).map((r) => r.id);
    const spare = removed.find((id) => existsSync(this.paths.blocks(id)));
    let spared: string | null = null;
    if (spare) {
      // Two renames: a crash between leaves a spare without an index, which
      // takeSpare ignores, and an index without its release, removed below.
      try {
        rmSync(this.paths.spare, { recursive: true, force: true });
        renameSync(this.paths.release(spare), this.paths.spare);
        renameSync(this.paths.blocks(spare), join(this.paths.spare, SPARE_INDEX));
        spared = spare;
      } catch {
        rmSync(this.paths.spare, { recursive: true, force: true }); // a spare is only ever a saving
      }
      this.points.delete(spare);
    }
    for (const id of removed) {
      if (id === spared) continue;
      rmSync(this.paths.release(id), { recursive: true, force: true });
      rmSync(this.paths.blocks(id), { force: true });
      this.points.delete(id);
    }
    // What a crash in an earlier prune left: indexes and history of releases that are gone.
    const present = new Set(this.ids());
    const indexes = existsSync(this.paths.blocksDir) ? readdirSync(this.paths.blocksDir) : [];
    for (const f of indexes) if (f.endsWith(".json") && !present.has(f.slice(0, -5))) rmSync(join(this.paths.blocksDir, f), { force: true });
    const h = this.history();
    const stale = Object.keys(h).filter((id) => !present.has(id));
    if (stale.length) {
      for (const id of stale) delete h[id];
      this.saveHistory(h);
    }
    return removed;
  }

  /**
   * Moves the spare's file `path` to `dest` and returns its block digests as
   * they were when that release was verified; null if it has none. The rest
   * of the spare is removed either way: it serves one update.
   *
   * Why keep a spare: on a filesystem without shared extents (ext4) each
   * release is a full copy of a ~110 MB executable of which a one-line change
   * alters the last few MB. Rewriting a pruned release's file in place
   * (verified MiB by MiB against the base, see verified-file.ts) writes only
   * what differs, instead of filling 110 MB of fresh page cache and disk.
   */
  takeSpare(path: string, dest: string): Uint8Array | null {
    try {
      if (!lstatSync(this.paths.spare).isDirectory()) return null; // never through a symlink
      const index = BlocksResponse.parse(JSON.parse(readFileSync(join(this.paths.spare, SPARE_INDEX), "utf8")));
      const f = index.files[path];
      if (index.block_size !== BLOCK_SIZE || !f) return null;
      renameSync(join(this.paths.spare, path), dest);
      return Buffer.from(f.hashes, "base64");
    } catch {
      return null;
    } finally {
      rmSync(this.paths.spare, { recursive: true, force: true });
    }
  }
}
