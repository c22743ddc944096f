/** Semver precedence exactly as semver.org §11 orders it, including decnet's own version shapes. */
import { expect, test } from "bun:test";
import { compareSemver, isSemver, parseSemver } from "../../src/protocol/semver.ts";

test("the spec's own example chain sorts in order, each pair both ways", () => {
  const chain = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0", "10.0.0"];
  const wrong: string[] = [];
  for (let i = 0; i < chain.length; i++) {
    for (let j = 0; j < chain.length; j++) {
      const want = i < j ? -1 : i > j ? 1 : 0;
      if (compareSemver(chain[i]!, chain[j]!) !== want) wrong.push(`${chain[i]} vs ${chain[j]}`);
    }
  }
  expect(wrong).toEqual([]);
});

test("decnet's versions: a prerelease is older than its release, numeric before alphanumeric", () => {
  expect({
    nextVsRelease: compareSemver("0.1.0-next", "0.1.0"),
    fourVsNext: compareSemver("0.1.0-4", "0.1.0-next"),
    fourVsRelease: compareSemver("0.1.0-4", "0.1.0"),
    thirdVsNext: compareSemver("0.1.0-third", "0.1.0-next"),
    patch: compareSemver("0.1.1-next", "0.1.0"),
    build: compareSemver("0.1.0+abc", "0.1.0+def"),
    huge: compareSemver("0.1.99999999999999999999", "0.1.99999999999999999998"),
    numericLength: compareSemver("0.1.0-10", "0.1.0-9"),
  }).toEqual({ nextVsRelease: -1, fourVsNext: -1, fourVsRelease: -1, thirdVsNext: 1, patch: 1, build: 0, huge: 1, numericLength: 1 });
});

test("anything that is not semver is refused rather than guessed at", () => {
  const bad = ["", "1", "1.0", "v1.0.0", "01.0.0", "1.0.0-01", "1.0.0-", "1.0.0+", "1.0.0-a..b", " 1.0.0", "1.0.0\n", "agent-silent", `1.0.0-${"a".repeat(60)}`];
  expect({ parsed: bad.map((v) => parseSemver(v)), compared: compareSemver("1.0.0", "x"), ok: ["0.1.0", "0.1.0-next", "0.1.0-4", "1.0.0-rc.1+build.5"].map(isSemver) }).toEqual({
    parsed: bad.map(() => null),
    compared: null,
    ok: [true, true, true, true],
  });
});
