/**
 * The agent's workload endpoints with a real Docker engine and compose v2
 * (test/fleet/dockerd.ts): a compose project deployed and reachable on
 * 127.0.B.x, listed, torn down; a non-local image failing with compose's own
 * error; and the same deploy from the agent unit under a real systemd, to
 * see that its hardening (ProtectHome=read-only) leaves compose working.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { cpSync, existsSync } from "node:fs";
import { join } from "node:path";
import { bundlePaths } from "../../src/lib/paths.ts";
import { Dockerd, IMAGE, composePlugin } from "../fleet/dockerd.ts";
import { Fleet, ROOT, until, type Worker } from "../fleet/harness.ts";
import { Container, nspawnUnavailable } from "../fleet/nspawn.ts";

// Real daemons, a real engine, a booted container; set per file (a preload only reaches the first file).
setDefaultTimeout(120_000);

let fleet: Fleet;
let w: Worker;
let docker: Dockerd | undefined;
let why: string | null = null;
try {
  docker = await Dockerd.start();
} catch (e) {
  why = (e as Error).message;
  console.log(`real-docker tests skipped: ${why}`);
}
const it = test.skipIf(why !== null);
// The last test needs a booted container too.
const noSystemd = why ?? (await nspawnUnavailable());
if (noSystemd && !why) console.log(`real-docker under a real systemd skipped: ${noSystemd}`);

beforeAll(async () => {
  if (!docker) return;
  fleet = await Fleet.create({ workers: 1 });
  w = fleet.worker("w1");
  await Bun.write(join(w.installDir, ".env.local"), `DECNET_COMPOSE_BIN=${docker.cli}\n`);
  await fleet.startAgent(w, { env: docker.env });
}, 180_000);

afterAll(async () => {
  await fleet?.[Symbol.asyncDispose]();
  await docker?.[Symbol.asyncDispose]();
});

async function post(path: string, body: unknown) {
  const res = await fleet.request(w, "agent", path, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });
  return { status: res.status, body: (await res.json()) as any };
}
const deployed = async () => ((await (await fleet.request(w, "agent", "/status")).json()) as { deployments: Array<{ project: string }> }).deployments.map((d) => d.project);
/** This project's containers as the engine lists them: name and state. */
const containers = async (project: string) =>
  (await docker!.docker(["ps", "-a", "--filter", `label=com.docker.compose.project=${project}`, "--format", "{{.Names}} {{.State}}"])).stdout.trim().split("\n").filter(Boolean);

/** A web server on addr:port, busybox httpd in the host's network namespace. */
function webCompose(addr: string, port: number): string {
  return [
    "services:",
    "  web:",
    `    image: ${IMAGE}`,
    "    network_mode: host",
    // busybox as PID 1 ignores SIGTERM: without an init every `down` waits 10 s.
    "    init: true",
    `    command: ["sh", "-c", "mkdir -p /www && echo hello from decnet > /www/index.html && exec httpd -f -p ${addr}:${port} -h /www"]`,
    "",
  ].join("\n");
}

async function freePort(hostname: string): Promise<number> {
  const s = Bun.listen({ hostname, port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

const get = (url: string) => fetch(url, { signal: AbortSignal.timeout(2_000) }).then(async (r) => `${r.status} ${(await r.text()).trim()}`, (e: Error) => `unreachable: ${e.message.split("\n")[0]}`);

it("/deploy starts a real compose project reachable on the worker's address, /status lists it, /teardown removes it", async () => {
  const port = await freePort(w.address);
  const url = `http://${w.address}:${port}/`;
  const t0 = performance.now();
  const up = await post("/deploy", { project: "web", compose: webCompose(w.address, port) });
  const served = await until(async () => ((await get(url)).startsWith("200") ? get(url) : null), "the deployed web server to answer");
  const upMs = Math.round(performance.now() - t0);
  const during = { status: await deployed(), containers: await containers("web") };
  const t1 = performance.now();
  const down = await post("/teardown", { project: "web" });
  const downMs = Math.round(performance.now() - t1);
  console.log(`real-docker: deploy to serving ${upMs} ms, teardown ${downMs} ms`);
  expect({
    up: [up.status, up.body.action, up.body.stderr.includes("Container web-web-1  Started")],
    served,
    during,
    down: [down.status, down.body.action],
    after: { status: await deployed(), containers: await containers("web"), served: (await get(url)).startsWith("unreachable"), file: existsSync(join(w.installDir, "deployments/web")) },
  }).toEqual({
    up: [200, "up", true],
    served: "200 hello from decnet",
    during: { status: ["web"], containers: ["web-web-1 running"] },
    down: [200, "down"],
    after: { status: [], containers: [], served: true, file: false },
  });
});

it("a deploy of an image no registry can give fails with compose's own error in the 500, and leaves nothing deployed", async () => {
  const compose = "services:\n  app:\n    image: registry.invalid/decnet/nope:1\n    network_mode: none\n";
  const r = await post("/deploy", { project: "nope", compose });
  const stderr: string = r.body.error?.detail?.stderr ?? "";
  const down = await post("/teardown", { project: "nope" });
  expect({
    status: r.status,
    code: r.body.error?.code,
    message: r.body.error?.message,
    fromCompose: stderr.includes('Error response from daemon: Get "https://registry.invalid/v2/"'),
    containers: await containers("nope"),
    down: down.status,
  }).toEqual({
    status: 500,
    code: "compose_failed",
    message: `${docker!.cli} compose up for nope failed: exited ${/exited (\d+)/.exec(r.body.error?.message ?? "")?.[1]}`,
    fromCompose: true,
    containers: [],
    // Nothing is deployed to tear down: the failed deploy cleaned up after itself.
    down: 404,
  });
});

test.skipIf(noSystemd !== null)("under a real systemd, the hardened agent unit (ProtectHome=read-only, no HOME) deploys and tears down through the same engine", async () => {
  // The engine's socket and CLI, bound into the container at their default paths: the unit sets no DOCKER_HOST.
  await using c = await Container.boot("w1", {
    nspawnArgs: [`--bind=${docker!.sock}:/run/docker.sock`, `--bind-ro=${docker!.cli}:/usr/bin/docker`, `--bind-ro=${composePlugin()}:/usr/libexec/docker/cli-plugins/docker-compose`],
  });
  const inst = join(c.rootfs, "root/inst");
  cpSync(fleet.bin, join(inst, "decnet"));
  cpSync(join(ROOT, "install.sh"), join(inst, "install.sh"));
  cpSync(w.agentBundle, join(inst, "b"), { recursive: true });
  cpSync(w.updaterBundle, join(inst, "b-updater"), { recursive: true });
  const installed = await c.sh(`cd /root/inst && sh install.sh --binary ./decnet --bundle ./b --updater-bundle ./b-updater --host ${w.address}`, { timeoutMs: 120_000 });
  expect(installed.code).toBe(0);
  const m = bundlePaths(join(fleet.env.DECNET_HOME!, "ca", "master"), "worker");
  const call = async (path: string, body?: unknown) => {
    const r = await c.net(["curl", "-sS", "--max-time", "60", "--cacert", m.ca, "--cert", m.crt, "--key", m.key, "-H", "content-type: application/json",
      ...(body ? ["--data-binary", JSON.stringify(body)] : []), "-w", "\n%{http_code}", `https://${w.address}:8765${path}`]);
    const lines = r.stdout.trimEnd().split("\n");
    const status = Number(lines.pop());
    try { return { status, body: JSON.parse(lines.join("\n")) }; } catch { return { status, body: lines.join("\n") || r.stderr }; }
  };
  await until(async () => (await call("/health")).status === 200, "the agent in the container to answer", 30_000);
  const compose = `services:\n  idle:\n    image: ${IMAGE}\n    network_mode: none\n    init: true\n    command: ["sleep", "600"]\n`;
  const up = await call("/deploy", { project: "inside", compose });
  const during = await containers("inside");
  const down = await call("/teardown", { project: "inside" });
  const unit = await c.unit("decnet-agent", ["ProtectHome", "ProtectSystem", "ActiveState"]);
  expect({
    up: [up.status, up.body.action ?? up.body.error],
    during,
    down: [down.status, down.body.action ?? down.body.error],
    after: await containers("inside"),
    unit,
    dockerHome: existsSync(join(c.rootfs, "root/.docker")),
  }).toEqual({
    up: [200, "up"],
    during: ["inside-idle-1 running"],
    down: [200, "down"],
    after: [],
    unit: { ProtectHome: "read-only", ProtectSystem: "strict", ActiveState: "active" },
    dockerHome: false,
  });
});
