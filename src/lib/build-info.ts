/**
 * What this executable is: version, git sha, build time and target baked in at
 * compile time by build.ts, and the release id read from the manifest beside
 * the executable when it runs from a release.
 */
import { readFileSync } from "node:fs";
import { manifestBeside } from "./paths.ts";

declare const DECNET_BUILD: { version: string; sha: string; dirty: boolean; built_at: string; target: string } | undefined;

export interface BuildInfo {
  version: string;
  git: { sha: string; dirty: boolean };
  built_at: string | null;
  target: string;
  release: string | null;
  compiled: boolean;
}

function releaseId(): string | null {
  try {
    const m = JSON.parse(readFileSync(manifestBeside(process.execPath), "utf8")) as { id?: unknown };
    return typeof m.id === "string" ? m.id : null;
  } catch {
    return null;
  }
}

let cached: BuildInfo | undefined;

export function buildInfo(): BuildInfo {
  if (cached) return cached;
  if (typeof DECNET_BUILD !== "undefined") {
    const b = DECNET_BUILD;
    cached = { version: b.version, git: { sha: b.sha, dirty: b.dirty }, built_at: b.built_at, target: b.target, release: releaseId(), compiled: true };
  } else {
    // Running from source (bun src/main.ts, unit tests): no release.
    const pkg = require("../../package.json") as { version: string };
    cached = { version: pkg.version, git: { sha: "unknown", dirty: true }, built_at: null, target: `${process.platform}-${process.arch}`, release: null, compiled: false };
  }
  return cached;
}

/** argv that starts this same program again (compiled binary, or bun + script). */
export function selfArgv(): string[] {
  return buildInfo().compiled ? [process.execPath] : [process.execPath, process.argv[1]!];
}
