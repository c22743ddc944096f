/**
 * `bun bench/delta-peers.ts`: decnet's delta bytes against rsync's, on the
 * same real builds (A; B one app line changed; C 200 new lines). For A→B and
 * A→C: the format-1 body, the format-2 body (with and without the master's
 * copy of the base), the block index (JSON as today, compact, compact with the
 * master's query), the master's planning time (tarball path against straight
 * from the executable), and rsync -az against a local `rsync --daemon` on
 * 127.0.0.77 through a counting TCP relay (bytes both ways and wall time);
 * then the real decnet CLI pushing A→B and A→C to one worker behind a
 * counting relay, with the base's index in the master's cache and without.
 * Prints a table; writes bench/results/delta-peers.json.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { createConnection, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deltaBody, planDelta } from "../test/fixtures/delta1.ts";
import { encodeDelta2 } from "../src/core/delta2-encode.ts";
import { hashFile, planInputs, rangeReader } from "../src/core/plan-input.ts";
import { writeTarball } from "../src/lib/tarball.ts";
import { openDelta2 } from "../src/lib/delta2-decode.ts";
import { type BlockIndex, decodeCompactIndex, encodeCompactIndex, encodeIndexQuery, groupDigests, truncateDigests } from "../src/protocol/block-index.ts";
import { BLOCK_SIZE } from "../src/protocol/delta.ts";
import { type Manifest, releaseId } from "../src/protocol/manifest.ts";
import { buildVariants } from "../test/fixtures/variants.ts";
import { Fleet, runCli } from "../test/fleet/harness.ts";

const ADDRESS = "127.0.0.77";
const RUNS = 3;
const work = mkdtempSync(join(tmpdir(), "decnet-peers-"));
const log = (s: string) => process.stderr.write(`delta-peers: ${s}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (t0: number) => Math.round(performance.now() - t0);

function manifestFor(h: ReturnType<typeof hashFile>): Manifest {
  const files = [{ path: "decnet", mode: "0755", size: h.size, sha256: h.sha256 }];
  return { format: 1, name: "decnet", version: "9.0.0-bench", git: { sha: "bench", dirty: false }, built_at: null, target: "linux-x64", files, id: releaseId(files) };
}

/** The release tarball of `file` as the master packed it before format 2 (for the old planning path's figures). */
async function packTarball(m: Manifest, file: string): Promise<string> {
  const dir = join(work, `pack-${m.id.slice(0, 12)}`);
  mkdirSync(dir, { recursive: true });
  copyFileSync(file, join(dir, "decnet"));
  writeFileSync(join(dir, "manifest.json"), `${JSON.stringify(m, null, 2)}\n`);
  await writeTarball(join(dir, "release.tar.gz"), dir, ["manifest.json", "decnet"]);
  return join(dir, "release.tar.gz");
}

/** A free TCP port on ADDRESS. */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, ADDRESS, r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** rsyncd with its own config, receiving into `dest`; stopped by its pid. */
async function rsyncDaemon(dest: string) {
  const port = await freePort();
  const conf = join(work, "rsyncd.conf");
  writeFileSync(conf, `port = ${port}\naddress = ${ADDRESS}\nuse chroot = no\npid file = ${join(work, "rsyncd.pid")}\n[rel]\n  path = ${dest}\n  read only = false\n  uid = root\n  gid = root\n`);
  const proc = Bun.spawn(["rsync", "--daemon", "--no-detach", `--config=${conf}`], { stdout: "ignore", stderr: "pipe" });
  const deadline = Date.now() + 10_000;
  for (;;) {
    const up = await new Promise<boolean>((r) => {
      const c = createConnection(port, ADDRESS, () => { c.destroy(); r(true); });
      c.on("error", () => r(false));
    });
    if (up) break;
    if (Date.now() > deadline) throw new Error(`rsync --daemon did not listen on ${ADDRESS}:${port}: ${await new Response(proc.stderr).text()}`);
    await Bun.sleep(20);
  }
  return { port, [Symbol.asyncDispose]: async () => { proc.kill(); await proc.exited; } };
}

/** A TCP relay on `address` to `port` counting the bytes each way (payload, not headers) and the connections. */
async function countingRelay(port: number, address = ADDRESS, listenPort = 0) {
  const counts = { up: 0, down: 0, connections: 0 };
  const server: Server = createServer((client) => {
    counts.connections += 1;
    const upstream = createConnection(port, address);
    client.on("data", (d: Buffer) => { counts.up += d.byteLength; });
    upstream.on("data", (d: Buffer) => { counts.down += d.byteLength; });
    client.pipe(upstream);
    upstream.pipe(client);
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
  // A listen error rejects (the fleet is then disposed), rather than crashing the bench with daemons left running.
  await new Promise<void>((r, reject) => {
    server.once("error", reject);
    server.listen(listenPort, address, r);
  });
  return { port: (server.address() as { port: number }).port, counts, [Symbol.asyncDispose]: () => new Promise<void>((r) => server.close(() => r())) };
}

interface RsyncRun { sent: number; received: number; socketUp: number; socketDown: number; ms: number }

/** rsync -az of `file` onto a fresh copy of `base` in the daemon's module, through the relay. */
async function rsyncOnce(file: string, base: string, dest: string, port: number, counts: { up: number; down: number }, extra: string[] = []): Promise<RsyncRun> {
  copyFileSync(base, join(dest, "decnet"));
  // An hour old, as a worker's release is: same size and mtime would let rsync skip the file.
  const old = new Date(Date.now() - 3600_000);
  utimesSync(join(dest, "decnet"), old, old);
  const src = join(work, "src");
  rmSync(src, { recursive: true, force: true });
  mkdirSync(src);
  copyFileSync(file, join(src, "decnet"));
  counts.up = 0;
  counts.down = 0;
  const t0 = performance.now();
  // Not spawnSync: the relay runs on this process's event loop.
  const p = Bun.spawn(["rsync", "-az", "--stats", ...extra, join(src, "decnet"), `rsync://${ADDRESS}:${port}/rel/`], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  const wall = ms(t0);
  if (code !== 0) throw new Error(`rsync failed: ${err}`);
  if (!/Number of regular files transferred: 1/.test(out)) throw new Error(`rsync did not transfer the file:\n${out}`);
  const num = (re: RegExp) => Number(re.exec(out)?.[1]?.replace(/,/g, "") ?? Number.NaN);
  if (hashFile(join(dest, "decnet")).sha256 !== hashFile(file).sha256) throw new Error("rsync's result differs from the source");
  return { sent: num(/Total bytes sent: ([\d,]+)/), received: num(/Total bytes received: ([\d,]+)/), socketUp: counts.up, socketDown: counts.down, ms: wall };
}

/** Rebuilds the new file from the body and A (in memory), for its sha256: the body must be right to count. */
async function decodeCheck(body: Uint8Array, mA: Manifest, a: ReturnType<typeof rangeReader>, size: number): Promise<{ sha256: string; ms: number }> {
  const t0 = performance.now();
  const r = await openDelta2((async function* () { yield body; })(), { id: mA.id, files: mA.files, read: (_p, o, l) => a.read(o, l) });
  const sha = new Bun.CryptoHasher("sha256");
  for await (const ev of r.events()) {
    if (ev.type === "copy") sha.update(a.read(ev.first * BLOCK_SIZE, Math.min(size, (ev.first + ev.count) * BLOCK_SIZE) - ev.first * BLOCK_SIZE));
    else if (ev.type === "bytes") sha.update(ev.data);
  }
  return { sha256: sha.digest("hex"), ms: ms(t0) };
}

interface CliPush { up: number; down: number; connections: number; ms: number; sent: number; received: number; format: number | null; mode: string }

/**
 * The real decnet CLI on the wire: one worker whose updater listens on
 * another port behind a counting relay on 8766 (the agent's own /health
 * check after the switch goes to 8765 and is not counted), and
 * `swarm update --host w1 --artifact EXE` from A to `target`, timed from the
 * CLI's start to its exit. Cached: the master pushed A, so it has A's index
 * and bytes. Cold: its release cache emptied first, as for a base another
 * master made: the index is asked of the worker.
 */
async function cliOnTheWire(v: Record<"A" | "B" | "C", string>) {
  log("decnet CLI on the wire: one worker behind a counting relay");
  await using fleet = await Fleet.create({ workers: 1 });
  const w = fleet.workers[0]!;
  // The updater on 18766 (a flag: the harness's own --port would win over the environment), the relay on 8766 where the master calls.
  const started = await runCli(fleet.bin, [...fleet.updaterArgs(w, { port: "18766" }), "--daemon"], fleet.env);
  if (started.code !== 0) throw new Error(`updater did not start: ${started.stderr}`);
  await using relay = await countingRelay(18766, w.address, 8766);
  const push = async (file: string, extra: string[] = []): Promise<CliPush> => {
    relay.counts.up = relay.counts.down = relay.counts.connections = 0;
    const t0 = performance.now();
    const r = await fleet.cli(["swarm", "update", "--host", w.name, "--artifact", file, "--json", ...extra]);
    const wall = ms(t0);
    if (r.code !== 0) throw new Error(`swarm update ${file}: ${r.stderr}${r.stdout}`);
    const row = (JSON.parse(r.stdout) as { hosts: Array<{ transfer: { mode: string; bytes: number; received: number; format?: number } }> }).hosts[0]!;
    return { ...relay.counts, ms: wall, sent: row.transfer.bytes, received: row.transfer.received, format: row.transfer.format ?? null, mode: row.transfer.mode };
  };
  const out: Record<string, { cached: CliPush[]; cold: CliPush[] }> = {};
  for (const name of ["B", "C"] as const) {
    out[name] = { cached: [], cold: [] };
    for (let i = 0; i < RUNS; i++) {
      await push(v.A, ["--full"]);
      const cached = await push(v[name]);
      if (cached.mode !== "delta" || cached.received !== 0) throw new Error(`A→${name} cached: expected a delta with no index received, got ${JSON.stringify(cached)}`);
      out[name].cached.push(cached);
      await push(v.A, ["--full"]);
      rmSync(join(fleet.env.DECNET_HOME!, "cache", "releases"), { recursive: true, force: true });
      const cold = await push(v[name]);
      if (cold.mode !== "delta" || cold.received === 0) throw new Error(`A→${name} cold: expected a delta with its index received, got ${JSON.stringify(cold)}`);
      out[name].cold.push(cold);
    }
  }
  return out;
}

async function main() {
  log(`building A, B (one app line), C (200 lines) in ${work}`);
  const v = await buildVariants(work);
  const hA = hashFile(v.A);
  const mA = manifestFor(hA);
  const fullIndexA: BlockIndex = { release: mA.id, width: 32, files: { decnet: { size: hA.size, digests: hA.digests } } };
  const cachedIndexA: BlockIndex = { ...fullIndexA, width: 8, files: { decnet: { size: hA.size, digests: truncateDigests(hA.digests) } } };
  const blocksJson = JSON.stringify({ release: mA.id, block_size: BLOCK_SIZE, files: { decnet: { size: hA.size, hashes: Buffer.from(hA.digests).toString("base64") } } });
  using a = rangeReader(v.A);
  const dest = join(work, "dest");
  mkdirSync(dest);
  await using daemon = await rsyncDaemon(dest);
  await using relay = await countingRelay(daemon.port);

  const rows: Record<string, unknown>[] = [];
  for (const name of ["B", "C"] as const) {
    const file = v[name];
    log(`A→${name}: master planning, tarball path (format 1) and from the executable (format 2)`);
    const plan2: number[] = [];
    let enc: ReturnType<typeof encodeDelta2> = null;
    let hN = hashFile(file);
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now();
      hN = hashFile(file);
      const inputs = planInputs(manifestFor(hN), { decnet: file }, { decnet: hN });
      enc = encodeDelta2({ manifest: manifestFor(hN), files: inputs.files, base: cachedIndexA, baseBytes: { read: (_p, o, l) => a.read(o, l) } });
      inputs.dispose();
      plan2.push(ms(t0));
    }
    const mN = manifestFor(hN);
    const inputs = planInputs(mN, { decnet: file }, { decnet: hN });
    const noDict = encodeDelta2({ manifest: mN, files: inputs.files, base: cachedIndexA, baseBytes: null });
    inputs.dispose();
    const check = await decodeCheck(enc!.body, mA, a, hA.size);
    if (check.sha256 !== hN.sha256) throw new Error(`format 2 A→${name} does not rebuild ${name}`);

    const t1 = performance.now();
    const tarball = await packTarball(mN, file);
    const packMs = ms(t1);
    const t2 = performance.now();
    const p1 = await planDelta(tarball, mN, JSON.parse(blocksJson));
    const body1 = p1 ? await deltaBody(p1) : null;
    const plan1Ms = ms(t2);

    // The compact index a worker would answer: everything, or only the groups the master's query lacks.
    const query = encodeIndexQuery({ decnet: groupDigests(hN.digests) });
    const answer = encodeCompactIndex(fullIndexA, { decnet: groupDigests(hN.digests) });
    const decoded = decodeCompactIndex(answer, { decnet: hN.digests });
    if (Buffer.compare(decoded.files.decnet!.digests, cachedIndexA.files.decnet!.digests) !== 0) throw new Error("compact index with query does not rebuild A's index");

    log(`A→${name}: rsync -az, ${RUNS} runs (and --block-size=16384)`);
    const rs: RsyncRun[] = [];
    for (let i = 0; i < RUNS; i++) rs.push(await rsyncOnce(file, v.A, dest, relay.port, relay.counts));
    const rs16 = await rsyncOnce(file, v.A, dest, relay.port, relay.counts, ["--block-size=16384"]);
    const r0 = rs[0]!;
    const rsyncWire = r0.socketUp + r0.socketDown;
    const f2 = enc!.stats.bodyBytes;
    const f2fetched = f2 + query.byteLength + answer.byteLength;
    rows.push({
      change: `A→${name}`,
      release_bytes: hN.size,
      format1_body: body1?.byteLength ?? null,
      format2_body: f2,
      format2_body_without_base_copy: noDict?.stats.bodyBytes ?? null,
      format2_frames: enc!.stats.frames,
      format2_literal_bytes: enc!.stats.literalBytes,
      index_json: blocksJson.length,
      index_compact: encodeCompactIndex(fullIndexA).byteLength,
      index_query_and_answer: query.byteLength + answer.byteLength,
      plan_tarball_path_ms: { pack: packMs, plan: plan1Ms },
      plan_from_executable_ms: median(plan2),
      decode_check_ms: check.ms,
      rsync: { sent: r0.sent, received: r0.received, socket_up: r0.socketUp, socket_down: r0.socketDown, ms: median(rs.map((r) => r.ms)), runs_ms: rs.map((r) => r.ms) },
      rsync_block_16k: { sent: rs16.sent, received: rs16.received, socket: rs16.socketUp + rs16.socketDown, ms: rs16.ms },
      ratio_bytes_cached_index: f2 / rsyncWire,
      ratio_bytes_fetched_index: f2fetched / rsyncWire,
      ratio_bytes_format1_today: ((body1?.byteLength ?? 0) + blocksJson.length) / rsyncWire,
    });
  }

  const kB = (n: number | null) => (n === null ? "—" : `${(n / 1000).toFixed(1)} kB`);
  const lines: string[] = [];
  for (const r of rows as any[]) {
    lines.push(`${r.change} (release ${kB(r.release_bytes)})`);
    lines.push(`  format-1 body (gzip literals)             ${kB(r.format1_body)}   + index JSON ${kB(r.index_json)} = ${kB(r.format1_body + r.index_json)} (today)`);
    lines.push(`  format-2 body (zstd against base)         ${kB(r.format2_body)}   (${r.format2_frames} frames, ${kB(r.format2_literal_bytes)} of changed blocks)`);
    lines.push(`  format-2 body, no copy of the base        ${kB(r.format2_body_without_base_copy)}`);
    lines.push(`  index: JSON / compact / query+answer      ${kB(r.index_json)} / ${kB(r.index_compact)} / ${kB(r.index_query_and_answer)}`);
    lines.push(`  master plan: tarball path                 ${r.plan_tarball_path_ms.pack} ms pack + ${r.plan_tarball_path_ms.plan} ms plan`);
    lines.push(`  master plan: from the executable          ${r.plan_from_executable_ms} ms (hash + encode, median of ${RUNS})`);
    lines.push(`  rsync -az (stats sent/received)           ${kB(r.rsync.sent)} / ${kB(r.rsync.received)}`);
    lines.push(`  rsync -az (socket up/down, both)          ${kB(r.rsync.socket_up)} / ${kB(r.rsync.socket_down)} = ${kB(r.rsync.socket_up + r.rsync.socket_down)}, ${r.rsync.ms} ms (median of ${RUNS})`);
    lines.push(`  rsync -az --block-size=16384 (socket)     ${kB(r.rsync_block_16k.socket)}, ${r.rsync_block_16k.ms} ms`);
    lines.push(`  decnet/rsync bytes: format 2, cached index ${r.ratio_bytes_cached_index.toFixed(3)}; index fetched (query) ${r.ratio_bytes_fetched_index.toFixed(3)}; format 1 today ${r.ratio_bytes_format1_today.toFixed(2)}`);
  }
  const cli = await cliOnTheWire(v);
  lines.push(`decnet CLI \`swarm update --host w1 --artifact EXE\`, through a counting relay in front of the updater (TLS included; the agent's /health after the switch is not counted):`);
  for (const name of ["B", "C"] as const) {
    const r0 = (rows as any[]).find((r) => r.change === `A→${name}`);
    const rsyncWire = r0.rsync.socket_up + r0.rsync.socket_down;
    for (const kind of ["cached", "cold"] as const) {
      const runs = cli[name]![kind];
      const p = runs[0]!;
      const wire = p.up + p.down;
      lines.push(`  A→${name} ${kind === "cached" ? "index cached" : "index asked "}  ${kB(p.up)} up / ${kB(p.down)} down = ${kB(wire)} on the wire (row: sent ${kB(p.sent)}, received ${kB(p.received)}, format ${p.format}), ${p.connections} conn, CLI ${runs.map((r) => r.ms).join(" / ")} ms; decnet/rsync bytes ${(wire / rsyncWire).toFixed(3)}, time ${(median(runs.map((r) => r.ms)) / r0.rsync.ms).toFixed(2)}`);
    }
  }
  process.stdout.write(`${lines.join("\n")}\n`);
  mkdirSync(join(import.meta.dir, "results"), { recursive: true });
  writeFileSync(join(import.meta.dir, "results/delta-peers.json"), `${JSON.stringify({ at: new Date().toISOString(), rows, cli }, null, 2)}\n`);
}

try {
  await main();
} finally {
  rmSync(work, { recursive: true, force: true });
}
