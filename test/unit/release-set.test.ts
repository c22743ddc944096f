/**
 * Keep-N pruning over real directories: current, previous, the newest N good
 * releases and the newest failed one stay; everything else (and its block
 * index) goes, the newest of it into the spare, which one update takes.
 */
import { expect, test } from "bun:test";
import { closeSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ReleaseSet } from "../../src/daemons/updater/release-set.ts";
import { installPaths } from "../../src/lib/paths.ts";
import { manifestFor } from "../../src/protocol/manifest.ts";

function fakeRelease(slots: ReleaseSet, n: number): string {
  const files = [{ path: "decnet", mode: "0755", size: n, sha256: n.toString(16).padStart(64, "0") }];
  const m = manifestFor({ version: `1.${n}`, target: "linux-x64" }, files);
  const id = m.id;
  mkdirSync(slots.paths.release(id), { recursive: true });
  writeFileSync(join(slots.paths.release(id), "manifest.json"), JSON.stringify(m));
  mkdirSync(join(slots.paths.root, "blocks"), { recursive: true });
  writeFileSync(slots.paths.blocks(id), "{}");
  return id;
}

test("prune keeps current, previous, the newest N good and the newest failed; removes the rest", () => {
  const dir = mkdtempSync(join(tmpdir(), "decnet-slots-"));
  try {
    const slots = new ReleaseSet(installPaths(dir));
    const ids = Array.from({ length: 8 }, (_, i) => fakeRelease(slots, i + 1));
    const status = ["good", "good", "failed", "good", "good", "failed", "good", "good"] as const;
    ids.forEach((id, i) => slots.mark(id, status[i]!, new Date(Date.UTC(2026, 0, i + 1))));
    // What a crash inside an earlier prune can leave: an index and a history entry without a release.
    const gone = "e".repeat(64);
    writeFileSync(slots.paths.blocks(gone), "{}");
    slots.mark(gone, "good");
    slots.flip(ids[0]!, ids[1]!); // an old release can be current (after rollbacks)
    const removed = slots.prune(2);
    const kept = readdirSync(slots.paths.releases).filter((n) => n !== ".spare").sort();
    expect({
      removed: [...removed].sort(),
      kept,
      spare: [JSON.parse(readFileSync(join(slots.paths.spare, "manifest.json"), "utf8")).id, readFileSync(join(slots.paths.spare, "blocks.json"), "utf8")],
      blocksGone: [...removed, gone].every((id) => !existsSync(slots.paths.blocks(id))),
      historyOfGone: gone in JSON.parse(readFileSync(join(dir, "history.json"), "utf8")),
      listed: slots.list().releases.map((r) => r.id).sort(),
    }).toEqual({
      // newest good: ids[7], ids[6]; newest failed: ids[5]; current ids[0], previous ids[1]
      removed: [ids[2]!, ids[3]!, ids[4]!].sort(),
      kept: [ids[0]!, ids[1]!, ids[5]!, ids[6]!, ids[7]!].sort(),
      // the newest removed, with its block index
      spare: [ids[4]!, "{}"],
      blocksGone: true,
      historyOfGone: false,
      listed: [ids[0]!, ids[1]!, ids[5]!, ids[6]!, ids[7]!].sort(),
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the spare hands over one file with its recorded digests, once; a spare without a usable index gives nothing", () => {
  const dir = mkdtempSync(join(tmpdir(), "decnet-slots-"));
  try {
    const hashes = Buffer.alloc(64, 7);
    /** A fresh install dir whose spare is a pruned release with the file `decnet` and this index. */
    const spareWith = (name: string, index: unknown) => {
      const slots = new ReleaseSet(installPaths(join(dir, name)));
      const ids = [1, 2, 3].map((n) => fakeRelease(slots, n));
      ids.forEach((id, i) => slots.mark(id, "good", new Date(Date.UTC(2026, 0, i + 1))));
      writeFileSync(join(slots.paths.release(ids[0]!), "decnet"), "old bytes");
      writeFileSync(slots.paths.blocks(ids[0]!), JSON.stringify(index));
      slots.prune(2); // ids[0] goes, into the spare
      mkdirSync(join(slots.paths.root, "stage"));
      return { slots, dest: join(slots.paths.root, "stage/decnet") };
    };
    const take = (s: ReturnType<typeof spareWith>, path = "decnet") => {
      const held = s.slots.spare.take(path, s.dest);
      if (held) closeSync(held.fd);
      return [held && Buffer.from(held.digests).equals(hashes), existsSync(s.dest) && readFileSync(s.dest, "utf8"), existsSync(s.slots.paths.spare)];
    };
    const good = { release: "x", block_size: 16384, files: { decnet: { size: 9, hashes: hashes.toString("base64") } } };
    const hit = spareWith("hit", good);
    // A spare that is a symlink is not followed, and only the link goes.
    const linked = spareWith("linked", good);
    const elsewhere = join(dir, "elsewhere");
    renameSync(linked.slots.paths.spare, elsewhere);
    symlinkSync(elsewhere, linked.slots.paths.spare);
    expect({
      symlink: [...take(linked), existsSync(join(elsewhere, "decnet"))],
      hit: take(hit),
      again: take(hit),
      otherFile: take(spareWith("other", good), "other"),
      otherBlockSize: take(spareWith("bs", { ...good, block_size: 4096 })),
      noIndex: take(spareWith("none", {})),
    }).toEqual({
      symlink: [null, false, false, true],
      hit: [true, "old bytes", false],
      again: [null, "old bytes", false],
      otherFile: [null, false, false],
      otherBlockSize: [null, false, false],
      noIndex: [null, false, false],
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
