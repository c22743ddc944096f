/** The manifest rules and the release id, which anyone must be able to recompute. */
import { expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { Manifest, releaseId, releaseIdText } from "../../src/protocol/manifest.ts";

const files = [
  { path: "zeta", mode: "0644", size: 3, sha256: "b".repeat(64) },
  { path: "decnet", mode: "0755", size: 10, sha256: "a".repeat(64) },
];

test("the release id is sha256 over sorted `<sha256> <mode> <size> <path>` lines", () => {
  const text = `${"a".repeat(64)} 0755 10 decnet\n${"b".repeat(64)} 0644 3 zeta\n`;
  expect({ text: releaseIdText(files), id: releaseId(files) }).toEqual({ text, id: createHash("sha256").update(text).digest("hex") });
});

test("the manifest refuses setuid modes, path tricks, duplicates and a missing decnet", () => {
  const base = { format: 1, name: "decnet", version: "1", git: { sha: "x", dirty: false }, built_at: null, target: "linux-x64", id: "c".repeat(64) };
  const ok = (fs: unknown[]) => Manifest.safeParse({ ...base, files: fs }).success;
  const f = (path: string, mode = "0755") => ({ path, mode, size: 1, sha256: "a".repeat(64) });
  expect({
    good: ok([f("decnet")]),
    setuid: ok([f("decnet", "4755")]),
    setgid: ok([f("decnet", "2755")]),
    dotdot: ok([f("decnet"), f("..")]),
    slash: ok([f("decnet"), f("a/b")]),
    manifest: ok([f("decnet"), f("manifest.json")]),
    dup: ok([f("decnet"), f("decnet")]),
    noDecnet: ok([f("other")]),
  }).toEqual({ good: true, setuid: false, setgid: false, dotdot: false, slash: false, manifest: false, dup: false, noDecnet: false });
});
