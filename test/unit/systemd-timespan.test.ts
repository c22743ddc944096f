/** The agent unit's stop timeout as `systemctl show` prints it, read by the supervisor to size its own wait. */
import { expect, test } from "bun:test";
import { parseTimespan } from "../../src/daemons/updater/systemd-supervisor.ts";

test("systemd time spans → milliseconds; anything else → null", () => {
  expect(["10s", "1min 30s", "500ms", "1h 2min 3s 4ms", "250us", "infinity", "", "10", "soon"].map(parseTimespan)).toEqual([
    10_000, 90_000, 500, 3_723_004, 0.25, Number.POSITIVE_INFINITY, null, null, null,
  ]);
});
