/**
 * Files on the worker and the master that decnet must not trust blindly:
 * half a CA is refused instead of silently replaced, a key readable by
 * others or an install dir writable by others stops a daemon with one line
 * naming the fix, and an empty or truncated state.json does not stop the
 * updater from starting.
 */
import { expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readdirSync, readlinkSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { release } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";

const fleet = useFleet({ workers: 2 });
const oneLine = (s: string) => s.trim().split("\n").length === 1;

test("a missing ca.key next to ca.crt is refused, never replaced by a new CA", async () => {
  const home = fleet.env.DECNET_HOME!;
  const key = join(home, "ca", "ca.key");
  renameSync(key, `${key}.away`);
  const r = await fleet.cli(["swarm", "enroll", "--host", "extra", "--address", "127.0.0.9"]);
  renameSync(`${key}.away`, key);
  expect({ code: r.code, oneLine: oneLine(r.stderr), says: r.stderr.includes(`${key} is missing next to`), noNewCa: !existsSync(key) || readdirSync(join(home, "ca")).filter((n) => n.startsWith("ca.")).sort() }).toEqual({
    code: 1, oneLine: true, says: true, noNewCa: ["ca.crt", "ca.key"],
  });
});

test("a private key readable by others, or an install dir writable by others, stops the daemon with the fix named", async () => {
  const w = fleet.worker("w1");
  const key = join(w.updaterBundle, "updater.key");
  chmodSync(key, 0o644);
  const loose = await fleet.cli([...fleet.updaterArgs(w), "--daemon"]);
  chmodSync(key, 0o600);
  mkdirSync(w.installDir, { recursive: true });
  chmodSync(w.installDir, 0o777);
  const open = await fleet.cli([...fleet.updaterArgs(w), "--daemon"]);
  const preflight = await fleet.cli([...fleet.updaterArgs(w), "--preflight"]);
  chmodSync(w.installDir, 0o755);
  expect({
    key: [loose.code, oneLine(loose.stderr), loose.stderr.includes(`private key ${key} is readable by group or others (mode 0644) — chmod 600 ${key}`)],
    dir: [open.code, oneLine(open.stderr), open.stderr.includes(`${w.installDir} is writable by group or others (mode 0777)`)],
    preflight: [preflight.code, preflight.stderr.includes("chmod go-w")],
  }).toEqual({ key: [1, true, true], dir: [1, true, true], preflight: [1, true] });
});

test("an empty or truncated state.json: the updater starts, moves it aside and keeps the slots as the links say", async () => {
  const w = fleet.worker("w2");
  const v1 = await release("v1");
  await fleet.startUpdater(w);
  expect((await fleet.push(w, v1.file)).status).toBe(200);
  const results: Array<[string, boolean, string | null]> = [];
  for (const text of ["", '{"op":"update","phase":"swi']) {
    process.kill(fleet.pid(w, "updater"), "SIGKILL");
    writeFileSync(w.paths.stateJson, text);
    await fleet.startUpdater(w);
    const h = await fleet.health(w);
    results.push([JSON.stringify(text), h.agent.healthy, readlinkSync(w.paths.current)]);
  }
  expect({ results, aside: readdirSync(w.installDir).filter((n) => n.startsWith("state.json.damaged-")).length, journal: existsSync(w.paths.stateJson) }).toEqual({
    results: [['""', true, `releases/${v1.id}`], ['"{\\"op\\":\\"update\\",\\"phase\\":\\"swi"', true, `releases/${v1.id}`]],
    aside: 2,
    journal: false,
  });
});
