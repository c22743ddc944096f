/**
 * A rooted worker answers the master: a fake updater holding that worker's
 * real updater certificate (as a rooted honeypot would) answers with a gzip
 * bomb, an endless body, terminal escapes and a poisoned block index. The
 * master stays small, says one clean line for that host, prints nothing a
 * terminal would act on, and the other hosts of the same push are updated.
 */
import { beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { release, type Worker } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";

const fleet = useFleet({ workers: 3, start: ["w2", "w3"], env: { NO_COLOR: "1", DECNET_REQUEST_TIMEOUT_MS: "5000" } });
let fake: Worker;
beforeAll(() => {
  fake = fleet.worker("w1");
});

/** Serves `answer` as w1's updater, with w1's own updater certificate; `await using` stops it. */
function fakeUpdater(answer: (path: string) => Response | Promise<Response>) {
  const read = (f: string) => readFileSync(`${fake.updaterBundle}/${f}`, "utf8");
  const server = Bun.serve({
    hostname: fake.address,
    port: 8766,
    tls: { cert: read("updater.crt"), key: read("updater.key"), ca: read("ca.crt"), requestCert: true, rejectUnauthorized: true },
    fetch: (req) => answer(new URL(req.url).pathname),
  });
  return { [Symbol.asyncDispose]: async () => server.stop(true) };
}

/**
 * The CLI as a process, with its peak RSS from GNU time (Bun's
 * resourceUsage() reports the largest of all children so far, not this one).
 */
async function cliRss(args: string[]) {
  const p = Bun.spawn(["/usr/bin/time", "-f", "%M", fleet.bin, ...args], { env: { ...process.env, ...fleet.env }, cwd: fleet.root, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  const lines = stderr.trimEnd().split("\n");
  return { code, stdout, stderr: lines.slice(0, -1).join("\n"), rssMb: Math.round(Number(lines.at(-1)) / 1024) };
}

const ESC = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/;

test("a gzip bomb or an endless answer from one worker costs the master a line, not its memory; the others are updated", async () => {
  const v1 = await release("v1");
  // 10 MB of JSON that gzips to ~10 kB, then an answer that never ends.
  const bomb = gzipSync(Buffer.from(`{"current":null,"previous":null,"releases":[${'{"id":"x"},'.repeat(1_000_000)}{}]}`));
  const endless = () =>
    new Response(new ReadableStream({ pull: (c) => c.enqueue(new Uint8Array(1 << 20).fill(0x20)) }), { headers: { "content-type": "application/json" } });
  let r1: Awaited<ReturnType<typeof cliRss>>;
  {
    await using _ = fakeUpdater(() => new Response(bomb, { headers: { "content-encoding": "gzip", "content-type": "application/json" } }));
    r1 = await cliRss(["swarm", "update", "--host", "w1,w2", "--artifact", v1.file, "--json"]);
  }
  let r2: Awaited<ReturnType<typeof cliRss>>;
  {
    await using _ = fakeUpdater(endless);
    r2 = await cliRss(["swarm", "update", "--host", "w1,w3", "--artifact", v1.file, "--json"]);
  }
  const rows = (r: { stdout: string }) => Object.fromEntries((JSON.parse(r.stdout).hosts as Array<{ host: string; agent: string; detail: string }>).map((h) => [h.host, [h.agent, h.detail]]));
  expect({
    bomb: [r1.code, rows(r1), r1.rssMb > 0 && r1.rssMb < 300],
    endless: [r2.code, rows(r2), r2.rssMb > 0 && r2.rssMb < 300],
    bytes: bomb.byteLength < 64 * 1024,
  }).toEqual({
    bomb: [1, { w1: ["error", "updater answered with content-encoding gzip, which the master does not accept"], w2: ["updated", expect.any(String)] }, true],
    endless: [1, { w1: ["error", "updater answered more than 1048576 bytes, the most this request's answer may have"], w3: ["updated", expect.any(String)] }, true],
    bytes: true,
  });
});

test("worker text with ESC, OSC, CSI and C1 bytes is escaped in the table, the error line and the JSON", async () => {
  const v1 = await release("v1");
  const evil = "\x1b]0;pwned\x07\x1b[2K\x1b[1Aw2  127.0.0.1  \x1b[32mupdated\x1b[0m \x9b2J \u202e";
  const answers = (path: string) =>
    path === "/releases"
      ? Response.json({ current: null, previous: null, releases: [{ id: "a".repeat(64), version: evil, git: { sha: evil, dirty: false }, installed_at: evil, status: "good", current: true, previous: false }] })
      : Response.json({ error: { code: "install_failed", message: evil } }, { status: 500 });
  await using _ = fakeUpdater(answers);
  const table = await fleet.cli(["swarm", "update", "--host", "w1", "--artifact", v1.file, "--full"]);
  const json = await fleet.cli(["swarm", "update", "--host", "w1", "--artifact", v1.file, "--full", "--json"]);
  const releases = await fleet.cli(["swarm", "releases", "--host", "w1"]);
  const rollback = await fleet.cli(["swarm", "rollback", "--host", "w1"]);
  const shown = [table.stdout, table.stderr, releases.stdout, rollback.stderr];
  expect({
    codes: [table.code, json.code, releases.code, rollback.code],
    raw: shown.map((s) => ESC.test(s.replace(/\n/g, ""))),
    jsonRaw: /[\x7f-\x9f\u202e]/.test(json.stdout),
    visible: table.stdout.includes("\\x1b]0;pwned\\x07\\x1b[2K") && releases.stdout.includes("\\u202e"),
    // The JSON still carries the worker's exact words, escaped the JSON way.
    jsonValue: JSON.parse(json.stdout).hosts[0].detail.includes(evil),
  }).toEqual({ codes: [1, 1, 0, 1], raw: [false, false, false, false], jsonRaw: false, visible: true, jsonValue: true });
});

test("one worker's poisoned block index does not decide what a healthy peer on the same base receives", async () => {
  const [v1, v2] = [await release("v1"), await release("v2")];
  const w2 = fleet.worker("w2");
  expect((await fleet.update(["--host", "w2", "--artifact", v1.file])).code).toBe(0);
  const index = await (await fleet.request(w2, "updater", `/blocks?release=${v1.id}`)).json() as { files: Record<string, { size: number; hashes: string }> };
  // w1 claims the same base, with every digest wrong: a plan made from it would send everything.
  const poisoned = { release: v1.id, block_size: 16384, files: Object.fromEntries(Object.entries(index.files).map(([p, f]) => [p, { size: f.size, hashes: Buffer.alloc(Buffer.from(f.hashes, "base64").byteLength, 7).toString("base64") }])) };
  await using _ = fakeUpdater((path) =>
    path === "/releases" ? Response.json({ current: v1.id, previous: null, releases: [] }) : path === "/blocks" ? Response.json(poisoned) : Response.json({ error: { code: "internal", message: "no" } }, { status: 500 }),
  );
  const r = await fleet.update(["--host", "w1,w2", "--artifact", v2.file, "--concurrency", "1"]);
  expect({ w1: r.row("w1").agent, w2: [r.row("w2").agent, r.row("w2").transfer?.mode] }).toEqual({ w1: "error", w2: ["updated", "delta"] });
});
