/**
 * The agent's workload endpoints over mTLS, with a stand-in for the compose
 * binary set through .env.local: deploy, status, teardown, invalid bodies, a
 * failing compose; and a bad .env.local refused at start.
 */
import { beforeAll, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, type Worker } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";

const fleet = useFleet({ workers: 2 });
let w: Worker;
let log: string;
beforeAll(async () => {
  w = fleet.worker("w1");
  log = join(fleet.root, "compose-calls.log");
  await Bun.write(join(w.installDir, ".env.local"), `# set by the test\nDECNET_COMPOSE_BIN=${join(ROOT, "test/fixtures/compose-standin.sh")}\n`);
  await fleet.startAgent(w, { env: { COMPOSE_STANDIN_LOG: log } });
}, 180_000);

async function post(path: string, body: string) {
  const res = await fleet.request(w, "agent", path, { method: "POST", body, headers: { "content-type": "application/json" } });
  return { status: res.status, body: (await res.json()) as any };
}
const status = async () => ((await (await fleet.request(w, "agent", "/status")).json()) as { deployments: Array<{ project: string }> }).deployments.map((d) => d.project);

test("/deploy, /status and /teardown round trip through the configured compose binary", async () => {
  const compose = "services:\n  web:\n    image: nginx\n";
  const up = await post("/deploy", JSON.stringify({ project: "web", compose }));
  const stored = readFileSync(join(w.installDir, "deployments/web/compose.yml"), "utf8");
  const during = await status();
  const down = await post("/teardown", JSON.stringify({ project: "web" }));
  const file = join(w.installDir, "deployments/web/compose.yml");
  expect({
    up: [up.status, up.body.action, up.body.stdout.startsWith("standin: compose -p web")],
    stored,
    during,
    down: [down.status, down.body.action],
    after: await status(),
    calls: readFileSync(log, "utf8").trim().split("\n"),
    removed: !existsSync(file),
  }).toEqual({
    up: [200, "up", true],
    stored: compose,
    during: ["web"],
    down: [200, "down"],
    after: [],
    calls: [`compose -p web -f ${file} up -d`, `compose -p web -f ${file} down`],
    removed: true,
  });
});

test("invalid bodies get 400 with the error body; a failing compose returns its stderr and is not listed as deployed", async () => {
  const results = await Promise.all([
    post("/deploy", JSON.stringify({ project: "Bad Name!", compose: "x" })),
    post("/deploy", JSON.stringify({ project: "web" })),
    post("/deploy", "not json"),
    post("/teardown", JSON.stringify({ project: "never-deployed" })),
  ]);
  const failing = await post("/deploy", JSON.stringify({ project: "broken", compose: "services: {}\n" }));
  const status = (await (await fleet.request(w, "agent", "/status")).json()) as { deployments: Array<{ project: string }> };
  expect({
    invalid: results.map((r) => [r.status, r.body.error.code]),
    failing: [failing.status, failing.body.error.code, failing.body.error.detail.stderr],
    listed: status.deployments.some((x) => x.project === "broken"),
    kept: existsSync(join(w.installDir, "deployments", "broken")),
  }).toEqual({
    invalid: [[400, "bad_request"], [400, "bad_request"], [400, "bad_request"], [404, "not_found"]],
    failing: [500, "compose_failed", "compose: service web: image not found\n"],
    listed: false,
    kept: false,
  });
});

test("a .env.local with an unknown key or a bad value is a clear error at start", async () => {
  const w2 = fleet.worker("w2");
  await Bun.write(join(w2.installDir, ".env.local"), "DECNET_COMPOSE_BIN=/usr/bin/docker\nDECNET_AGNET_PORT=1\n");
  const typo = await fleet.cli(["agent", "--host", w2.address, "--agent-dir", w2.agentBundle, "--install-dir", w2.installDir]);
  writeFileSync(join(w2.installDir, ".env.local"), "DECNET_AGENT_PORT=not-a-port\n");
  const bad = await fleet.cli(["agent", "--host", w2.address, "--agent-dir", w2.agentBundle, "--install-dir", w2.installDir]);
  expect({ typo: [typo.code, typo.stderr.trim().split("\n")[0]], bad: [bad.code, bad.stderr.trim().split("\n").length, bad.stderr.includes("port")] }).toEqual({
    typo: [1, `decnet: ${join(w2.installDir, ".env.local")}:2: unknown key DECNET_AGNET_PORT — known keys: DECNET_HOST, DECNET_AGENT_PORT, DECNET_UPDATER_PORT, DECNET_COMPOSE_BIN, DECNET_PROBE_TIMEOUT_MS, DECNET_STOP_TIMEOUT_MS, DECNET_INSTALL_CHECK_TIMEOUT_MS, DECNET_MAX_UPLOAD_BYTES, DECNET_KEEP_RELEASES, DECNET_LOG_LEVEL`],
    bad: [2, 1, true],
  });
});
