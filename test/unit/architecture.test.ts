/**
 * Import direction (STYLE.md): main → cli → core → client; cli → daemons;
 * core, client and daemons may use lib and protocol; lib may use protocol.
 * A worker daemon never imports master code.
 */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const SRC = resolve(import.meta.dir, "../../src");

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith(".ts") ? [p] : [];
  });
}

const layer = (p: string) => relative(SRC, p).split("/")[0]!.replace(/\.ts$/, "");

const ALLOWED: Record<string, string[]> = {
  main: ["cli"],
  cli: ["cli", "core", "daemons", "lib", "protocol"],
  core: ["core", "client", "lib", "protocol"],
  client: ["client", "lib", "protocol"],
  daemons: ["daemons", "lib", "protocol"],
  lib: ["lib", "protocol"],
  protocol: ["protocol"],
};

test("imports only point down the layers", () => {
  const bad: string[] = [];
  for (const f of files(SRC)) {
    const from = layer(f);
    const text = readFileSync(f, "utf8");
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*"(\.[^"]+)"/g)) {
      const target = resolve(dirname(f), m[1]!);
      const to = layer(target);
      const toFile = relative(SRC, target).replace(/\.ts$/, "");
      if (!ALLOWED[from]!.includes(to) && !ALLOWED[from]!.includes(toFile)) bad.push(`${relative(SRC, f)} → ${relative(SRC, target)}`);
    }
  }
  expect(bad).toEqual([]);
});

test("cli/ files stay thin: no fs, fetch, SQL or zod", () => {
  const heavy = files(join(SRC, "cli")).filter((f) => /from "node:fs"|fetch\(|SELECT |from "zod"/.test(readFileSync(f, "utf8")));
  expect(heavy.map((f) => relative(SRC, f))).toEqual([]);
});

test("only daemons/server.ts calls Bun.serve, and only lib/env.ts reads process.env", () => {
  const all = files(SRC);
  const serve = all.filter((f) => readFileSync(f, "utf8").includes("Bun.serve(")).map((f) => relative(SRC, f));
  const env = all.filter((f) => /process\.env\[|process\.env\.[A-Z]/.test(readFileSync(f, "utf8"))).map((f) => relative(SRC, f));
  expect({ serve, env }).toEqual({ serve: ["daemons/server.ts"], env: ["lib/env.ts"] });
});

test("every source file is listed in ARCHITECTURE.md", () => {
  const doc = readFileSync(resolve(SRC, "../ARCHITECTURE.md"), "utf8");
  expect(files(SRC).map((f) => relative(SRC, f)).filter((f) => !doc.includes(f))).toEqual([]);
});
