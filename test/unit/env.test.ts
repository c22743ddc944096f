/** .env.local: known keys only, clear errors naming the line. */
import { expect, test } from "bun:test";
import { parseEnvFile } from "../../src/lib/env.ts";

test("parses KEY=VALUE with comments and quotes", () => {
  expect(parseEnvFile('# c\nDECNET_HOST=127.0.0.1\nexport DECNET_COMPOSE_BIN="/usr/bin/docker"\n\n', ".env.local")).toEqual({ DECNET_HOST: "127.0.0.1", DECNET_COMPOSE_BIN: "/usr/bin/docker" });
});

test("an unknown key or a malformed line is an error naming file and line", () => {
  const err = (t: string) => { try { parseEnvFile(t, "/opt/decnet/.env.local"); return null; } catch (e) { return (e as Error).message; } };
  expect([err("DECNET_HSOT=1"), err("ok\n")]).toEqual(["/opt/decnet/.env.local:1: unknown key DECNET_HSOT", "/opt/decnet/.env.local:1: not a KEY=VALUE line"]);
});
