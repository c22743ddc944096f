/**
 * The trust commands as an operator runs them, with the compiled binary: the
 * root kept offline, every document it writes checked the way a worker will
 * (protocol/trust.ts), signed releases checked with checkRelease, and broken
 * or missing files named in one line with what to do.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { checkRelease } from "../../src/protocol/signature.ts";
import { type TrustDocument, checkTrustUpdate, readTrustDocument } from "../../src/protocol/trust.ts";
import { FIXTURES, ROOT, binaries, runCli, type CliResult } from "../fleet/harness.ts";
import { tempDir } from "../fixtures/trust.ts";

setDefaultTimeout(60_000);

let bin: string;
const tmp = tempDir("trust-e2e");
beforeAll(async () => {
  bin = (await binaries()).bin;
}, 180_000);
afterAll(() => tmp[Symbol.dispose]());

const cli = (args: string[]) => runCli(bin, args, { DECNET_HOME: join(tmp.path, "home") }, { cwd: tmp.path });
const oneLine = (r: CliResult) => ({ code: r.code, lines: r.stderr.trim().split("\n").length, stack: /\n\s+at |\.ts:\d+/.test(r.stderr) });
const doc = (file: string): TrustDocument => {
  const r = readTrustDocument(readFileSync(file));
  if (!r.ok) throw new Error(r.message);
  return r.value;
};
const tarText = async (file: string, entry: string) => (await Bun.$`tar xzOf ${file} ${entry}`.quiet()).stdout.toString();

test("the root offline: each document the binary writes is taken by a worker holding the one before; signed releases pass checkRelease", async () => {
  const home = join(tmp.path, "home", "trust");
  const offline = join(tmp.path, "root-offline.key");
  const init = await cli(["trust", "init"]);
  renameSync(join(home, "root.key"), offline);
  const runs = [
    await cli(["trust", "add-signer", "--root-key", offline, "--out", join(tmp.path, "ci.key"), "--days", "30"]),
    await cli(["trust", "floor", "0.1.0", "--root-key", offline]),
    await cli(["trust", "rotate-root", "--root-key", offline, "--new-root-out", join(tmp.path, "root-2.key")]),
    await cli(["trust", "floor", "0.1.1", "--root-key", join(tmp.path, "root-2.key")]),
  ];
  const versions = [1, 2, 3, 4, 5].map((v) => doc(join(home, "history", `trust-${v}.json`)));
  const now = new Date();
  const steps = versions.slice(1).map((d, i) => {
    const r = checkTrustUpdate(versions[i]!, d, now);
    return r.ok ? d.signed.version : r.code;
  });
  // The CI key (certified before the rotation, re-certified by it) signs while packing.
  const rel = join(tmp.path, "r.tgz");
  const packed = await cli(["release", "pack", join(FIXTURES, "agent-silent.sh"), "--version", "0.1.1", "--out", rel, "--sign", "--key", join(tmp.path, "ci.key")]);
  const m = JSON.parse(await tarText(rel, "manifest.json"));
  const latest = doc(join(home, "trust.json"));
  const sigText = await tarText(rel, "signature.json");
  const verdict = (trust: TrustDocument, current: string | null = null) => {
    const r = checkRelease(trust, sigText, { id: m.id, version: m.version, target: m.target }, { current, allowDowngrade: false, now });
    return r.ok ? `ok ${r.signer}` : r.code;
  };
  const ciId = /signing key ([0-9a-f]{16})/.exec(runs[0]!.stdout)![1];
  expect({
    codes: [init.code, ...runs.map((r) => r.code), packed.code],
    steps,
    latestIsHistory5: JSON.stringify(latest) === JSON.stringify(versions[4]),
    entries: (await Bun.$`tar tzf ${rel}`.quiet()).stdout.toString(),
    signedByCi: packed.stdout.includes(`signed by ${ciId}`),
    underLatest: verdict(latest),
    underV2: verdict(versions[1]!),
    newer: verdict(latest, "0.1.2"),
  }).toEqual({
    codes: [0, 0, 0, 0, 0, 0],
    steps: [2, 3, 4, 5],
    latestIsHistory5: true,
    entries: "manifest.json\nsignature.json\ndecnet\n",
    signedByCi: true,
    // The rotation re-certified the CI key, and the pack used the newest certification.
    underLatest: `ok ${ciId}`,
    // A worker that missed the rotation does not know the new root.
    underV2: "untrusted_signer",
    newer: "downgrade",
  });
});

test("a missing or corrupt trust.json, a garbage key and a missing signing key are one line naming the file and what to do", async () => {
  const dir = join(tmp.path, "broken");
  await cli(["trust", "init", "--dir", dir]);
  const file = join(tmp.path, "x.tgz");
  await cli(["release", "pack", join(FIXTURES, "agent-silent.sh"), "--version", "0.1.0", "--out", file]);
  const text = readFileSync(join(dir, "trust.json"), "utf8");
  writeFileSync(join(dir, "trust.json"), text.replace(/"version": 1/, '"version": 7'));
  const edited = await cli(["trust", "show", "--dir", dir]);
  const signEdited = await cli(["release", "sign", file, "--trust-dir", dir]);
  writeFileSync(join(dir, "trust.json"), "\x00".repeat(70_000));
  const huge = await cli(["trust", "floor", "1.0.0", "--dir", dir]);
  const missing = await cli(["trust", "show", "--dir", join(tmp.path, "nothing")]);
  writeFileSync(join(tmp.path, "garbage.key"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
  writeFileSync(join(dir, "trust.json"), text);
  const garbage = await cli(["trust", "floor", "1.0.0", "--dir", dir, "--root-key", join(tmp.path, "garbage.key")]);
  const noKey = await cli(["release", "build", "--sign", "--trust-dir", join(tmp.path, "nothing")]);
  const f = join(dir, "trust.json");
  const restore = "restore it from a backup or from a worker's copy; `decnet trust init --dir NEW` starts a new root, which workers holding this one will refuse";
  expect({
    shapes: [edited, signEdited, huge, missing, garbage, noKey].map(oneLine),
    edited: edited.stderr,
    signEdited: signEdited.stderr,
    huge: huge.stderr,
    missing: missing.stderr,
    garbage: garbage.stderr,
    noKey: noKey.stderr,
  }).toEqual({
    shapes: [1, 1, 1, 1, 1, 2].map((code) => ({ code, lines: 1, stack: false })),
    edited: `decnet: ${f} is not a usable trust document: the trust document is not validly signed by any of its own roots (damaged or edited by hand) — ${restore}\n`,
    signEdited: `decnet: ${f} is not a usable trust document: the trust document is not validly signed by any of its own roots (damaged or edited by hand) — ${restore}\n`,
    huge: `decnet: ${f} is not a usable trust document: it is 70000 bytes, more than the 65536 allowed — ${restore}\n`,
    missing: `decnet: no trust document at ${join(tmp.path, "nothing", "trust.json")} — run \`decnet trust init\` to create one, or pass --dir DIR where it lives\n`,
    garbage: `decnet: ${join(tmp.path, "garbage.key")} is not a root key: no PEM private key in it\n`,
    noKey: `decnet: no signing key at ${join(tmp.path, "nothing", "signing.key")} — \`decnet trust init\` makes one; or pass --key FILE (and --trust-dir DIR for its trust.json)\n`,
  });
});

test("release build --sign builds the working tree and signs it as it packs", async () => {
  const out = join(tmp.path, "built.tgz");
  const dir = join(tmp.path, "build-trust");
  await cli(["trust", "init", "--dir", dir]);
  const r = await runCli(bin, ["release", "build", "--sign", "--trust-dir", dir, "--out", out], {}, { cwd: ROOT });
  const m = JSON.parse(await tarText(out, "manifest.json"));
  const sig = JSON.parse(await tarText(out, "signature.json"));
  expect({ code: r.code, says: /^release \S+ [0-9a-f]{12} \(linux-x64, [\d.]+ MB, signed by [0-9a-f]{16}\) from build of /.test(r.stdout), covers: sig.release }).toEqual({
    code: 0,
    says: true,
    covers: { id: m.id, version: m.version, target: m.target },
  });
});
