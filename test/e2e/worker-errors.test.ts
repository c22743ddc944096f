/**
 * Whatever a worker answers, the operator gets one readable line per host and
 * exit 1, never a crash or a stack: error bodies of any shape, a body that is
 * not JSON, an empty one, a handshake with another CA's server, nobody home.
 * The "updater" here is a stand-in served with the host's real certificate.
 */
import { beforeAll, expect, test } from "bun:test";
import type { Worker } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";
import { bundlePaths } from "../../src/lib/paths.ts";
import { readBundle, serverTls } from "../../src/lib/tls.ts";

const fleet = useFleet({ workers: 1 });
const other = useFleet({ workers: 1 }); // another decnet installation: another CA
let w: Worker;
beforeAll(() => {
  w = fleet.worker("w1");
});

/** Runs `swarm releases --host w1` against a stand-in answering `res`. */
async function against(res: () => Response, bundleOf: Worker = w) {
  const tls = serverTls(readBundle(bundlePaths(bundleOf.updaterBundle, "updater"), ""));
  await using _server = Bun.serve({ hostname: w.address, port: 8766, tls, fetch: res });
  // Awaited here: the server must outlive the call, not just the promise.
  return await fleet.cli(["swarm", "releases", "--host", "w1"]);
}

const line = (r: { code: number; stderr: string }) => ({ code: r.code, lines: r.stderr.trim().split("\n").length, stack: /\n\s+at |\.ts:\d+/.test(r.stderr), text: r.stderr.trim() });

test("error bodies of any shape become one line per host, exit 1", async () => {
  const results = {
    errorBody: line(await against(() => Response.json({ error: { code: "busy", message: "another operation is in flight (update)" } }, { status: 423 }))),
    stringError: line(await against(() => Response.json({ error: "disk full" }, { status: 500 }))),
    plainText: line(await against(() => new Response("<html>502 Bad Gateway</html>", { status: 502 }))),
    empty: line(await against(() => new Response(null, { status: 500 }))),
    wrongShape: line(await against(() => Response.json({ releases: "nope" }))),
  };
  expect(results).toEqual({
    errorBody: { code: 1, lines: 1, stack: false, text: "decnet: w1: another operation is in flight (update)" },
    stringError: { code: 1, lines: 1, stack: false, text: 'decnet: w1: updater answered HTTP 500: {"error":"disk full"}' },
    plainText: { code: 1, lines: 1, stack: false, text: "decnet: w1: updater answered HTTP 502: <html>502 Bad Gateway</html>" },
    empty: { code: 1, lines: 1, stack: false, text: "decnet: w1: updater answered HTTP 500 with an empty body" },
    wrongShape: { code: 1, lines: 1, stack: false, text: expect.stringMatching(/^decnet: w1: updater answered an unexpected shape: /) as unknown as string },
  });
});

test("a server from another CA is a handshake failure with its likely cause; nobody listening says to start an updater", async () => {
  const foreign = line(await against(() => Response.json({}), other.worker("w1")));
  const nobody = line(await fleet.cli(["swarm", "releases", "--host", "w1"]));
  expect({
    foreign: [foreign.code, foreign.lines, foreign.text.startsWith(`decnet: w1: TLS handshake with ${w.address}:8766 failed`), foreign.text.includes("bundle from another CA")],
    nobody: [nobody.code, nobody.lines, nobody.text],
  }).toEqual({
    foreign: [1, 1, true, true],
    nobody: [1, 1, `decnet: w1: connection refused by ${w.address}:8766 — no updater is listening there; start one with \`decnet updater --daemon …\``],
  });
});
