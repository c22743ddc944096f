/**
 * core/targets.ts in process: a push's releases by target (one each, the
 * first recorded), which release a host of each target gets, and the error
 * row of a host whose target has none.
 */
import { expect, test } from "bun:test";
import { missingTargetRow, TargetReleases } from "../../src/core/targets.ts";
import type { PushRelease } from "../../src/core/push-release.ts";
import type { Host } from "../../src/core/registry.ts";
import { manifestFor } from "../../src/protocol/manifest.ts";

const rel = (target: string, n: number): Pick<PushRelease, "manifest" | "source"> => ({
  source: `artifact ${target}`,
  manifest: manifestFor({ version: "1.0.0", target }, [{ path: "decnet", mode: "0755", size: n, sha256: String(n).repeat(64).slice(0, 64) }]),
});
const host = (name: string): Host => ({ name, address: "127.0.0.9", sans: [], agent_port: 8765, updater_port: 8766, enrolled_at: "", has_updater: true, decommissioned_at: null, last_release: null, last_result: null, last_pushed_at: null, target: null });

test("one release per target: a host gets its own target's, an unknown target the x64 one, a target without one nothing", () => {
  const x = rel("linux-x64", 1);
  const a = rel("linux-arm64", 2);
  const both = TargetReleases.of([a, x]);
  const armOnly = TargetReleases.of([a]);
  const dup = (() => { try { TargetReleases.of([x, rel("linux-x64", 3)]); return "taken"; } catch (e) { return (e as Error).message; } })();
  expect({
    primary: both.primary.manifest.target,
    x64: both.forTarget("linux-x64") === x,
    arm: both.forTarget("linux-arm64") === a,
    unknown: both.forTarget(null) === x,
    unknownArmOnly: armOnly.forTarget(null) === a,
    missing: armOnly.forTarget("linux-x64"),
    dup,
  }).toEqual({ primary: "linux-arm64", x64: true, arm: true, unknown: true, unknownArmOnly: true, missing: null, dup: "two releases for linux-x64: artifact linux-x64 and artifact linux-x64" });
});

test("a host whose target has no release: an error row that names it and how to provide one, nothing sent", () => {
  const r = missingTargetRow(host("pi1"), "linux-arm64", TargetReleases.of([rel("linux-x64", 1)]));
  expect({ agent: r.agent, code: r.error_code, bytes: r.bytes_sent, transfer: r.transfer, detail: r.detail }).toEqual({
    agent: "error", code: "no_release_for_target", bytes: 0, transfer: null,
    detail: "pi1 runs linux-arm64 and this push has no linux-arm64 release (it has linux-x64); nothing was sent — add --artifact with a linux-arm64 release (decnet release build --target linux-arm64), or leave out --artifact/--self to build one per target",
  });
});

test("a rollout keeps the other targets' releases (their push dirs) beside its own, reads them back for a resume, and drops them with it", async () => {
  const { mkdtempSync, rmSync, existsSync, readdirSync, writeFileSync, chmodSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const { releaseFromExecutable } = await import("../../src/core/push-release.ts");
  const { keepOthers, cachedOthers } = await import("../../src/core/targets.ts");
  const { dropRelease } = await import("../../src/core/rollout/kept-release.ts");
  const dir = mkdtempSync(join(tmpdir(), "decnet-kept-"));
  const home = process.env.DECNET_HOME;
  process.env.DECNET_HOME = join(dir, "home");
  try {
    const exe = join(dir, "exe");
    writeFileSync(exe, "#!/bin/sh\necho '{\"version\":\"1.0.0\"}'\n");
    chmodSync(exe, 0o755);
    const arm = releaseFromExecutable({ file: exe, version: "1.0.0", info: { target: "linux-arm64" }, source: "artifact exe" });
    const made = arm.dir;
    const kept = keepOthers("r1", [arm]);
    const back = await cachedOthers("r1");
    const rollouts = join(dir, "home", "cache", "rollouts");
    const files = readdirSync(rollouts);
    dropRelease("r1");
    expect({ moved: !existsSync(made), files, back: back.map((r) => [r.manifest.target, r.manifest.id === arm.manifest.id, r.dir === kept[0]!.dir]), after: readdirSync(rollouts) }).toEqual({
      moved: true, files: ["r1.linux-arm64"], back: [["linux-arm64", true, true]], after: [],
    });
  } finally {
    if (home === undefined) delete process.env.DECNET_HOME;
    else process.env.DECNET_HOME = home;
    rmSync(dir, { recursive: true, force: true });
  }
});
