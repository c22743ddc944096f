/**
 * A release set on disk — the agent's, or the updater's own: releases/<id>,
 * the current and previous links (flipped by symlink + rename), their
 * history, keep-N pruning, and the block index, resume points and spare
 * that make delta installs cheap.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { basename, join } from "node:path";
import { isReleaseId, type Manifest, parseManifest } from "../../protocol/manifest.ts";
import type { ReleaseInfo, ReleasesResponse } from "../../protocol/updater.ts";
import { replaceSymlink } from "../../lib/atomic.ts";
import { RELEASE_MANIFEST, type SlotPaths } from "../../lib/paths.ts";
import { readLink } from "../../lib/procfs.ts";
import { BaseRelease } from "./base-release.ts";
import { BlockIndex, type Digests } from "./block-index.ts";
import { History, type Status } from "./history.ts";
import { type FilePoints, ResumeCache } from "./resume-cache.ts";
import { releaseProblem } from "./release-check.ts";
import { Spare } from "./spare.ts";

export class ReleaseSet {
  readonly index: BlockIndex;
  readonly resume = new ResumeCache();
  readonly spare: Spare;
  private history: History;

  constructor(readonly paths: SlotPaths) {
    this.index = new BlockIndex(paths);
    this.spare = new Spare(paths);
    this.history = new History(paths.history);
  }

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

  /**
   * Points `current` and `previous` at these releases (null removes a link),
   * each by a new symlink renamed over the old: no instant without one.
   * Relative targets, so the install dir can move.
   */
  flip(current: string | null, previous: string | null): void {
    for (const [link, id] of [[this.paths.previous, previous], [this.paths.current, current]] as const) {
      if (id) replaceSymlink(link, join("releases", id));
      else rmSync(link, { force: true });
    }
  }

  /**
   * What is wrong with kept release `id` on disk (release-check.ts), or null
   * when it is intact. A damaged release is marked so, and never run again.
   */
  async damage(id: string): Promise<string | null> {
    const problem = await releaseProblem(this.paths.release(id), id);
    if (problem) this.mark(id, "damaged");
    return problem;
  }

  has(id: string): boolean {
    return existsSync(join(this.paths.release(id), RELEASE_MANIFEST));
  }

  manifest(id: string): Manifest | null {
    try {
      const r = parseManifest(readFileSync(join(this.paths.release(id), RELEASE_MANIFEST), "utf8"));
      return r.ok ? r.manifest : null;
    } catch {
      return null;
    }
  }

  ids(): string[] {
    if (!existsSync(this.paths.releases)) return [];
    return readdirSync(this.paths.releases).filter(isReleaseId);
  }

  mark(id: string, status: Status, now?: Date, signer?: string | null): void {
    this.history.mark(id, status, now, signer);
  }

  /** Keeps what verifying `manifest`'s release computed: its block index (on disk) and resume points (in memory). */
  keep(manifest: Manifest, verified: { blocks: Digests; points: FilePoints }): void {
    this.index.save(manifest, verified.blocks);
    this.resume.set(manifest.id, verified.points); // the copy just verified is the one kept (install.ts commit)
  }

  /** A kept release as a delta base, or null when it is not kept here. */
  async base(id: string): Promise<BaseRelease | null> {
    const m = this.has(id) ? this.manifest(id) : null;
    if (!m) return null;
    const index = await this.index.get(m, this.paths.release(id));
    return new BaseRelease(m, this.paths.release(id), index, (path) => this.resume.get(id, path));
  }

  /** GET /blocks: the block index of a kept release. */
  async blocks(id: string) {
    const m = this.has(id) ? this.manifest(id) : null;
    return m ? this.index.get(m, this.paths.release(id)) : null;
  }

  /** Hashes a kept release's files again for their resume points; returns the damaged ones. */
  async warm(id: string): Promise<string[]> {
    const m = this.has(id) ? this.manifest(id) : null;
    return m ? this.resume.warm(m, this.paths.release(id)) : [];
  }

  /** Leftover staging dirs: only ever from an interrupted operation. */
  removeStaging(): number {
    if (!existsSync(this.paths.releases)) return 0;
    const left = readdirSync(this.paths.releases).filter((n) => n.startsWith(".staging-"));
    for (const n of left) rmSync(join(this.paths.releases, n), { recursive: true, force: true });
    return left.length;
  }

  list(): ReleasesResponse {
    const h = this.history.read();
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
        signer: h[id]?.signer ?? null,
      };
    });
    releases.sort((a, b) => (b.installed_at ?? "").localeCompare(a.installed_at ?? ""));
    return { current, previous, releases };
  }

  /**
   * Keeps current, previous, the newest `keep` good releases and the newest
   * failed one (for forensics); removes the rest. The newest removed one
   * becomes the spare.
   */
  prune(keep: number): string[] {
    const { releases, current, previous } = this.list();
    const keepIds = new Set([current, previous].filter(Boolean) as string[]);
    for (const r of releases.filter((r) => r.status === "good").slice(0, keep)) keepIds.add(r.id);
    const failed = releases.find((r) => r.status === "failed");
    if (failed) keepIds.add(failed.id);
    const removed = releases.filter((r) => !keepIds.has(r.id)).map((r) => r.id);
    const candidate = removed.find((id) => this.index.has(id));
    const spared = candidate && this.spare.retire(candidate, this.index) ? candidate : null;
    for (const id of removed) {
      this.resume.delete(id);
      if (id === spared) continue;
      rmSync(this.paths.release(id), { recursive: true, force: true });
      this.index.remove(id);
    }
    // What a crash in an earlier prune left: indexes and history of releases that are gone.
    const present = new Set(this.ids());
    this.index.keepOnly(present);
    this.history.keepOnly(present);
    return removed;
  }
}
