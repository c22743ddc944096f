/**
 * The fd audit: open files deleted under a directory are found with their
 * path and the bytes they still hold; the operation lock runs its audit hook
 * after every operation, however it ended.
 */
import { expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, rmSync, unlinkSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OpLock } from "../../src/daemons/updater/routes.ts";
import { deletedFds } from "../../src/lib/fd-audit.ts";

test("an open file deleted under the dir is found with its path and size; closed or elsewhere, it is not", () => {
  const dir = mkdtempSync(join(tmpdir(), "decnet-fd-audit-"));
  const other = mkdtempSync(join(tmpdir(), "decnet-fd-audit-other-"));
  try {
    const held = openSync(join(dir, "staged"), "w");
    writeSync(held, new Uint8Array(1024 * 1024));
    const closed = openSync(join(dir, "closed"), "w");
    const elsewhere = openSync(join(other, "x"), "w");
    const kept = openSync(join(dir, "kept"), "w");
    for (const f of ["staged", "closed"]) unlinkSync(join(dir, f));
    unlinkSync(join(other, "x"));
    closeSync(closed);
    const found = deletedFds(dir);
    closeSync(held);
    expect({ found, after: deletedFds(dir) }).toEqual({ found: [{ fd: held, path: join(dir, "staged"), bytes: 1024 * 1024 }], after: [] });
    closeSync(elsewhere);
    closeSync(kept);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(other, { recursive: true, force: true });
  }
});

test("the operation lock runs its audit after each operation, success or failure, with the lock already free", async () => {
  const seen: string[] = [];
  const lock: OpLock = new OpLock((op) => seen.push(`${op} (busy: ${lock.busy})`));
  await lock.run("update", async () => "ok");
  await lock.run("rollback", async () => { throw new Error("no"); }).catch(() => {});
  const busy = await lock.run("update", () => lock.run("update", async () => 1)).catch((e) => e.code);
  expect({ seen, busy }).toEqual({ seen: ["update (busy: null)", "rollback (busy: null)", "update (busy: null)"], busy: "busy" });
});
