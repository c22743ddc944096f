/**
 * Keep-N pruning over real directories: current, previous, the newest N good
 * releases and the newest failed one stay; everything else (and its block
 * index) goes.
 */
import { expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Slots } from "../../src/daemons/updater/slots.ts";
import { installPaths } from "../../src/lib/paths.ts";
import { releaseId } from "../../src/protocol/manifest.ts";

function fakeRelease(slots: Slots, n: number): string {
  const files = [{ path: "decnet", mode: "0755", size: n, sha256: n.toString(16).padStart(64, "0") }];
  const id = releaseId(files);
  mkdirSync(slots.paths.release(id), { recursive: true });
  writeFileSync(join(slots.paths.release(id), "manifest.json"), JSON.stringify({ format: 1, name: "decnet", version: `1.${n}`, git: { sha: "x", dirty: false }, built_at: null, target: "linux-x64", files, id }));
  mkdirSync(join(slots.paths.root, "blocks"), { recursive: true });
  writeFileSync(slots.paths.blocks(id), "{}");
  return id;
}

test("prune keeps current, previous, the newest N good and the newest failed; removes the rest", () => {
  const dir = mkdtempSync(join(tmpdir(), "decnet-slots-"));
  try {
    const slots = new Slots(installPaths(dir));
    const ids = Array.from({ length: 8 }, (_, i) => fakeRelease(slots, i + 1));
    const status = ["good", "good", "failed", "good", "good", "failed", "good", "good"] as const;
    ids.forEach((id, i) => slots.mark(id, status[i]!, new Date(Date.UTC(2026, 0, i + 1))));
    slots.setCurrent(ids[0]!); // an old release can be current (after rollbacks)
    slots.setPrevious(ids[1]!);
    const removed = slots.prune(2);
    const kept = readdirSync(slots.paths.releases).sort();
    expect({
      removed: [...removed].sort(),
      kept,
      blocksGone: removed.every((id) => !existsSync(slots.paths.blocks(id))),
      listed: slots.list().releases.map((r) => r.id).sort(),
    }).toEqual({
      // newest good: ids[7], ids[6]; newest failed: ids[5]; current ids[0], previous ids[1]
      removed: [ids[2]!, ids[3]!, ids[4]!].sort(),
      kept: [ids[0]!, ids[1]!, ids[5]!, ids[6]!, ids[7]!].sort(),
      blocksGone: true,
      listed: [ids[0]!, ids[1]!, ids[5]!, ids[6]!, ids[7]!].sort(),
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
