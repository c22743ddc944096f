/**
 * GET /metrics on a real updater: Prometheus' own parser accepts it
 * (`promtool check metrics`), and its counters move as updates, a rollback
 * after a failed probe and an operator's rollback happen — and keep their
 * values across an updater restart.
 */
import { expect, test } from "bun:test";
import { statSync } from "node:fs";
import { release, until } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";
import { isAlive } from "../../src/lib/procfs.ts";

const fleet = useFleet({ workers: 1, env: { DECNET_PROBE_TIMEOUT_MS: "3000" }, start: ["w1"] });
const promtool = Bun.which("promtool") ?? (Bun.file("/usr/bin/promtool").size ? "/usr/bin/promtool" : null);
if (!promtool) console.log("metrics: the promtool check is skipped: promtool is not installed (Debian package prometheus; .ci/run installs it)");

const scrape = async () => {
  const res = await fleet.request(fleet.worker("w1"), "updater", "/metrics");
  return { type: res.headers.get("content-type"), text: await res.text() };
};

/** Sample lines as "name{labels}" → value. */
function samples(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** What `promtool check metrics` says of an exposition (parser and lint): exit code and output. */
function promCheck(text: string): { exit: number; said: string } {
  const r = Bun.spawnSync([promtool!, "check", "metrics"], { stdin: Buffer.from(text), stdout: "pipe", stderr: "pipe" });
  return { exit: r.exitCode, said: `${r.stdout}${r.stderr}` };
}

test.skipIf(!promtool)("promtool check metrics accepts the exposition of a fresh updater, lint included (and refuses a broken one)", async () => {
  const { type, text } = await scrape();
  expect({ type, check: promCheck(text), broken: promCheck(text.replace("decnet_agent_restarts_total", "decnet_agent_restarts")).exit }).toEqual({
    type: "text/plain; version=0.0.4; charset=utf-8",
    check: { exit: 0, said: "" },
    broken: 3,
  });
});

test("counters move after updates, a probe's rollback and an operator's rollback, and survive an updater restart", async () => {
  const w = fleet.worker("w1");
  const [v1, v2, bad] = await Promise.all([release("v1"), release("v2"), release("agent-exits")]);
  const before = samples((await scrape()).text);
  const statuses = [(await fleet.push(w, v1.file)).status, (await fleet.push(w, v2.file)).status, (await fleet.push(w, bad.file)).status];
  statuses.push((await fleet.request(w, "updater", "/rollback", { method: "POST" })).status);
  const scraped = (await scrape()).text;
  const after = samples(scraped);
  const moved = (k: string) => after[k]! - (before[k] ?? 0);
  const size = (f: string) => statSync(f).size;
  expect({
    statuses,
    updated: moved('decnet_updates_total{slot="agent",outcome="updated"}'),
    rolledBack: moved('decnet_updates_total{slot="agent",outcome="rolled_back"}'),
    refused: moved('decnet_updates_total{slot="agent",outcome="refused"}'),
    probe: moved('decnet_rollbacks_total{trigger="probe"}'),
    operator: moved('decnet_rollbacks_total{trigger="operator"}'),
    durations: moved('decnet_update_duration_seconds_count{slot="agent"}'),
    inf: after['decnet_update_duration_seconds_bucket{slot="agent",le="+Inf"}'] === after['decnet_update_duration_seconds_count{slot="agent"}'],
    bytes: moved("decnet_update_received_bytes_total"),
    // v1, v2, the failing one and the revert, the rollback.
    restarts: moved("decnet_agent_restarts_total"),
    release: after[`decnet_release_info{slot="agent",release="${v1.id}",version="${v1.version}"}`],
    healthy: after.decnet_agent_healthy,
    certs: [after['decnet_certificate_expiry_seconds{certificate="updater"}']!, after['decnet_certificate_expiry_seconds{certificate="agent"}']!].map((s) => Math.round(s / 86_400)),
    disk: after.decnet_install_dir_free_bytes! > 0 && after.decnet_install_dir_size_bytes! >= after.decnet_install_dir_free_bytes!,
    busy: Object.entries(after).filter(([k, v]) => k.startsWith("decnet_operation_in_flight") && v !== 0),
    // With releases, durations and every counter set, Prometheus' parser still agrees.
    promtool: promtool ? promCheck(scraped) : "skipped",
  }).toEqual({
    statuses: [200, 200, 409, 200],
    updated: 2,
    rolledBack: 1,
    refused: 0,
    probe: 1,
    operator: 1,
    durations: 3,
    inf: true,
    bytes: size(v1.file) + size(v2.file) + size(bad.file),
    restarts: 5,
    release: 1,
    healthy: 1,
    certs: [90, 90],
    disk: true,
    busy: [],
    promtool: promtool ? { exit: 0, said: "" } : "skipped",
  });

  // Restarted, the updater reads its counters back.
  const pid = fleet.pid(w, "updater");
  process.kill(pid, "SIGTERM");
  await until(() => !isAlive(pid), "the updater to stop");
  await fleet.startUpdater(w);
  const again = samples((await scrape()).text);
  const counters = (s: Record<string, number>) => Object.fromEntries(Object.entries(s).filter(([k]) => /_total|_seconds_(bucket|sum|count)/.test(k)));
  expect(counters(again)).toEqual(counters(after));
});
