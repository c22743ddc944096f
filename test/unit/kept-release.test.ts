/**
 * A rollout's releases fetched from a shared registry by a master that did
 * not start it (core/rollout/kept-release.fetchSharedRelease), with a store
 * that serves tarballs from a map: the recorded release and another target's
 * each become this master's kept dir; one the master keeps already is not
 * asked for; a release under another target's key is refused.
 */
import { expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { openPushRelease, releaseFromExecutable } from "../../src/core/push-release.ts";
import { dropRelease, fetchSharedRelease, keptTargetDir, sharedKey } from "../../src/core/rollout/kept-release.ts";
import type { Rollout } from "../../src/core/rollout/store.ts";
import { cachedOthers } from "../../src/core/targets.ts";
import { homePaths } from "../../src/lib/paths.ts";
import { useTempHome } from "../fixtures/temp-home.ts";

const home = useTempHome("decnet-kept-");

async function tarballFor(target: string, n: number): Promise<{ file: string; id: string }> {
  const exe = join(home, `exe-${target}-${n}`);
  writeFileSync(exe, crypto.getRandomValues(new Uint8Array(40_000 + n)), { mode: 0o755 });
  const r = releaseFromExecutable({ file: exe, version: "1.0.0", info: { target }, source: `artifact ${target}` });
  const file = join(home, `${target}-${n}.tar.gz`);
  copyFileSync(await r.tarball(), file);
  r.drop();
  return { file, id: r.manifest.id };
}

const rollout = (id: string, release: string) => ({ id, release_file: "kept", release: { id: release, source: "artifact" }, settings: { full: false } }) as unknown as Rollout;

/** A shared registry's fetchShared over a map of keys to tarballs; it records what was asked. */
function store(files: Record<string, string>) {
  const asked: string[] = [];
  return {
    asked,
    async fetchShared(key: string, file: string) {
      asked.push(key);
      if (!files[key]) return false;
      copyFileSync(files[key], file);
      return true;
    },
  };
}

test("the recorded release and another target's come from the shared registry into this master's kept dirs; kept ones are not asked again", async () => {
  const [x, a] = [await tarballFor("linux-x64", 1), await tarballFor("linux-arm64", 2)];
  const s = store({ [sharedKey("0000000a")]: x.file, [sharedKey("0000000a", "linux-arm64")]: a.file });
  await fetchSharedRelease(s, rollout("0000000a", x.id));
  const others = await cachedOthers("0000000a");
  const first = [...s.asked];
  await fetchSharedRelease(s, rollout("0000000a", x.id));
  expect({
    asked: first,
    recorded: openPushRelease(homePaths().rolloutRelease("0000000a"), "x")?.manifest.id === x.id,
    others: others.map((o) => [o.manifest.target, o.manifest.id]),
    // Every dir is kept now: only the targets the registry has none for are asked again.
    again: s.asked.slice(first.length),
  }).toEqual({
    asked: ["0000000a", "0000000a.linux-x64", "0000000a.linux-arm64"],
    recorded: true,
    others: [["linux-arm64", a.id]],
    again: ["0000000a.linux-x64"],
  });
});

test("a release kept under another target's key is refused, and nothing is kept for it", async () => {
  const x = await tarballFor("linux-x64", 3);
  const s = store({ [sharedKey("0000000b", "linux-arm64")]: x.file });
  const e = await fetchSharedRelease(s, rollout("0000000b", x.id)).then(() => null, (err: Error) => err.message);
  expect({ e, kept: existsSync(keptTargetDir("0000000b", "linux-arm64")), pushDirs: readdirSync(join(home, "cache", "push")).filter((n) => !n.startsWith(".")) }).toEqual({
    e: "rollout 0000000b: the registry's linux-arm64 release is a linux-x64 release",
    kept: false,
    pushDirs: [],
  });
});

test("dropping a rollout's releases also removes a shared tarball a kill -9 left mid-fetch", () => {
  const leftovers = [`${homePaths().rolloutRelease("0000000e")}.shared.tar.gz`, `${keptTargetDir("0000000e", "linux-arm64")}.shared.tar.gz.part`];
  mkdirSync(dirname(leftovers[0]!), { recursive: true });
  for (const f of leftovers) writeFileSync(f, "half a tarball");
  dropRelease("0000000e");
  expect(leftovers.filter((f) => existsSync(f))).toEqual([]);
});
