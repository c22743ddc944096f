/**
 * Signed releases on a real fleet (DESIGN §11): a worker given the fleet's
 * trust document (`swarm trust push`) takes only releases a certified,
 * unexpired, unrevoked signing key signed for exactly that release, at or
 * above the floor and not older than what it runs — full, delta and
 * self-update alike — checked before any of the release's code runs;
 * refusals are 403s that change nothing. Trust documents only move forward.
 * A worker with no trust document behaves as in v1.
 */
import { beforeAll, expect, test } from "bun:test";
import { cpSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeTarball } from "../../src/lib/tarball.ts";
import { certifySigner, readTrustDocument } from "../../src/protocol/trust.ts";
import { serializeSignature, signRelease } from "../../src/protocol/signature.ts";
import { generateKeyPairSync } from "node:crypto";
import { publicKeyB64 } from "../../src/protocol/ed25519.ts";
import { binaryAt, packRelease, type Packed, type Worker } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";

const fleet = useFleet({ workers: 2, start: "all" });
let w: Worker;
let trustDir: string;
/** Signed and unsigned releases of three versions. */
const rel: Record<string, Packed> = {};

/** Extracts a release tarball into `dir` (manifest.json, decnet, maybe signature.json). */
async function unpack(file: string, dir: string) {
  mkdirSync(dir, { recursive: true });
  await Bun.$`tar -xzf ${file} -C ${dir}`.quiet();
}

/** A tarball of `files` in `dir`, in that order (manifest first, then signature.json if given). */
async function repack(dir: string, out: string, names: string[]) {
  await writeTarball(out, dir, names);
  return out;
}

const push = async (x: Worker, file: string, query = "") => {
  const res = await fleet.request(x, "updater", `/update${query}`, { method: "POST", body: Bun.file(file) });
  const body = (await res.json()) as { error?: { code: string; message: string } };
  return [res.status, body.error?.code ?? "ok"] as const;
};
const state = (x: Worker) => ({ current: readlinkSync(x.paths.current), releases: readdirSync(x.paths.releases).filter((n) => !n.startsWith(".")).sort() });

beforeAll(async () => {
  w = fleet.worker("w1");
  trustDir = join(fleet.env.DECNET_HOME!, "trust");
  const init = await fleet.cli(["trust", "init"]);
  expect(init.code).toBe(0);
  const dir = join(fleet.root, "signed");
  mkdirSync(dir, { recursive: true });
  for (const v of ["0.9.0", "1.0.0", "1.1.0"]) {
    const bin = await binaryAt(v);
    rel[v] = await packRelease(bin, join(dir, `${v}.tar.gz`), ["--sign"], fleet.env);
    rel[`${v}-unsigned`] = await packRelease(bin, join(dir, `${v}-unsigned.tar.gz`));
  }
  // Before any trust document: a worker takes an unsigned release, as in v1.
  expect(await push(w, rel["1.0.0-unsigned"]!.file)).toEqual([200, "ok"]);
  const sent = await fleet.cli(["swarm", "trust", "push", "--host", "w1", "--json"]);
  expect(JSON.parse(sent.stdout)[0].outcome).toBe("updated");
}, 300_000);

test("with a trust document: unsigned, a moved signature, and signers never certified, expired or revoked are 403s that change nothing; a signed release goes in, full and as a delta", async () => {
  const work = join(fleet.root, "forged");
  // A valid signature (1.0.0's) moved onto another release (1.1.0's files).
  await unpack(rel["1.0.0"]!.file, join(work, "a"));
  await unpack(rel["1.1.0-unsigned"]!.file, join(work, "b"));
  cpSync(join(work, "a", "signature.json"), join(work, "b", "signature.json"));
  const moved = await repack(join(work, "b"), join(work, "moved.tar.gz"), ["manifest.json", "signature.json", "decnet"]);
  // A key the fleet's root never certified: another trust dir's.
  const other = await fleet.cli(["trust", "init", "--dir", join(work, "other-trust")]);
  expect(other.code).toBe(0);
  const foreign = await packRelease(await binaryAt("1.1.0"), join(work, "foreign.tar.gz"), ["--sign", "--key", join(work, "other-trust", "signing.key"), "--trust-dir", join(work, "other-trust")]);
  // A key the root certified with an expiry already past (made here, with the root key, as a CI job's key that lapsed).
  const m = JSON.parse(readFileSync(join(work, "b", "manifest.json"), "utf8"));
  const { readKeyFile } = await import("../../src/core/trust-keys.ts");
  const root = readKeyFile(join(trustDir, "root.key"), "root key");
  const kp = generateKeyPairSync("ed25519");
  const pub = publicKeyB64(kp.publicKey);
  const cert = certifySigner({ public: pub, expires: new Date(Date.now() - 60_000).toISOString().replace(/\.\d{3}Z$/, "Z") }, { id: root.id, key: root.key });
  writeFileSync(join(work, "b", "signature.json"), serializeSignature(signRelease({ id: m.id, version: m.version, target: m.target }, cert, kp.privateKey)));
  const expired = await repack(join(work, "b"), join(work, "expired.tar.gz"), ["manifest.json", "signature.json", "decnet"]);
  // A key certified, then revoked in a newer trust document pushed to the worker.
  const added = await fleet.cli(["trust", "add-signer", "--out", join(work, "ci.key")]);
  const ciId = /signing key ([0-9a-f]{16})/.exec(added.stdout)![1]!;
  const byCi = await packRelease(await binaryAt("1.1.0"), join(work, "by-ci.tar.gz"), ["--sign", "--key", join(work, "ci.key")], fleet.env);
  expect((await fleet.cli(["trust", "revoke-signer", ciId])).code).toBe(0);
  expect((await fleet.cli(["swarm", "trust", "push", "--host", "w1"])).code).toBe(0);

  const before = state(w);
  const refused = {
    unsigned: await push(w, rel["1.1.0-unsigned"]!.file),
    moved: await push(w, moved),
    foreign: await push(w, foreign.file),
    expired: await push(w, expired),
    revoked: await push(w, byCi.file),
  };
  const unchanged = state(w);
  const full = await fleet.update(["--host", "w1", "--artifact", rel["1.1.0"]!.file, "--full"]);
  expect((await fleet.update(["--host", "w1", "--artifact", rel["1.0.0"]!.file, "--allow-downgrade"])).code).toBe(0);
  const delta = await fleet.update(["--host", "w1", "--artifact", rel["1.1.0"]!.file]);
  const listed = (await fleet.releases(w)).releases.find((r) => r.id === rel["1.1.0"]!.id);
  expect({
    refused,
    unchanged: unchanged,
    full: [full.code, full.row().transfer?.mode, full.row().signer !== null],
    delta: [delta.code, delta.row().transfer?.mode, (await fleet.health(w)).agent.release],
    listedSigner: listed?.signer === full.row().signer,
  }).toEqual({
    refused: { unsigned: [403, "unsigned"], moved: [403, "bad_signature"], foreign: [403, "untrusted_signer"], expired: [403, "untrusted_signer"], revoked: [403, "untrusted_signer"] },
    unchanged: before,
    full: [0, "full", true],
    delta: [0, "delta", rel["1.1.0"]!.id],
    listedSigner: true,
  });
});

test("the master refuses to push an unsigned release to a host that requires signatures, before a byte is sent; a host without trust takes it", async () => {
  const r = await fleet.update(["--host", "w1,w2", "--artifact", rel["1.0.0-unsigned"]!.file]);
  expect({
    code: r.code,
    w1: [r.row("w1").agent, r.row("w1").transfer, r.row("w1").detail.includes("requires signed releases"), r.row("w1").detail.includes("decnet release sign")],
    w2: [r.row("w2").agent, r.row("w2").signer],
  }).toEqual({ code: 1, w1: ["error", null, true, true], w2: ["updated", null] });
});

test("floor and downgrade: an older signed release needs --allow-downgrade; below the floor it is refused even so, and so is a rollback onto it", async () => {
  const older = rel["0.9.0"]!.file;
  const plain = await fleet.update(["--host", "w1", "--artifact", older]);
  const allowed = await fleet.update(["--host", "w1", "--artifact", older, "--allow-downgrade"]);
  expect((await fleet.update(["--host", "w1", "--artifact", rel["1.1.0"]!.file])).code).toBe(0); // previous: 0.9.0
  expect((await fleet.cli(["trust", "floor", "1.0.0"])).code).toBe(0);
  expect((await fleet.cli(["swarm", "trust", "push", "--all"])).code).toBe(0);
  const below = await fleet.update(["--host", "w1", "--artifact", older, "--allow-downgrade"]);
  const rollback = await fleet.request(w, "updater", "/rollback", { method: "POST" });
  const h = await fleet.health(w);
  expect({
    plain: [plain.code, plain.row().detail.includes("older than the running")],
    allowed: [allowed.code, allowed.row().agent],
    below: [below.code, below.row().detail.includes("below the fleet's floor 1.0.0")],
    rollback: [rollback.status, ((await rollback.json()) as { error: { code: string } }).error.code],
    health: [h.agent.release, h.trust?.floor],
  }).toEqual({ plain: [1, true], allowed: [0, "updated"], below: [1, true], rollback: [403, "below_floor"], health: [rel["1.1.0"]!.id, "1.0.0"] });
});

test("trust documents only move forward: a replayed older one and one signed by a non-root key are refused, and the floor stays", async () => {
  const history = join(trustDir, "history");
  const oldest = readFileSync(join(history, readdirSync(history).sort()[0]!));
  const replay = await fleet.request(w, "updater", "/trust", { method: "POST", body: oldest });
  // Signed by the signing key instead of the root: a document no root signed.
  const doc = readTrustDocument(readFileSync(join(trustDir, "trust.json"))) as { ok: true; value: any };
  const { readKeyFile } = await import("../../src/core/trust-keys.ts");
  const { signTrustDocument } = await import("../../src/protocol/trust.ts");
  const signing = readKeyFile(join(trustDir, "signing.key"), "signing key");
  const forged = signTrustDocument({ ...doc.value.signed, version: doc.value.signed.version + 1, floor: null }, [{ id: signing.id, key: signing.key }]);
  const nonRoot = await fleet.request(w, "updater", "/trust", { method: "POST", body: JSON.stringify(forged) });
  const garbage = await fleet.request(w, "updater", "/trust", { method: "POST", body: "{not json" });
  const h = await fleet.health(w);
  expect({
    replay: [replay.status, ((await replay.json()) as any).error.code],
    nonRoot: [nonRoot.status, ((await nonRoot.json()) as any).error.code],
    garbage: [garbage.status, ((await garbage.json()) as any).error.code],
    held: [h.trust?.version, h.trust?.floor],
  }).toEqual({
    replay: [403, "downgrade"],
    nonRoot: [403, "bad_signature"],
    garbage: [400, "bad_request"],
    held: [doc.value.signed.version, "1.0.0"],
  });
});

test("a self-update under a trust root: unsigned refused, signed accepted", async () => {
  const unsigned = await fleet.request(w, "updater", "/update-self?confirm_self=true", { method: "POST", body: Bun.file(rel["1.1.0-unsigned"]!.file) });
  const signed = await fleet.update(["--host", "w1", "--artifact", rel["1.1.0"]!.file, "--include-self"]);
  const h = await fleet.health(w);
  expect({ unsigned: [unsigned.status, ((await unsigned.json()) as any).error.code], signed: [signed.code, signed.row().self], updater: h.release }).toEqual({
    unsigned: [403, "unsigned"], signed: [0, "updated"], updater: rel["1.1.0"]!.id,
  });
});

test("kill -9 during POST /trust leaves the old or the new document, never a broken one; the updater starts and reports one", async () => {
  const held = (await fleet.health(w)).trust!.version;
  expect((await fleet.cli(["trust", "floor", "1.0.1"])).code).toBe(0);
  const next = readFileSync(join(trustDir, "trust.json"));
  const seen = new Set<number>();
  for (let i = 0; i < 8; i++) {
    const sending = fleet.request(w, "updater", "/trust", { method: "POST", body: next }).catch(() => null);
    await Bun.sleep(i * 2);
    process.kill(fleet.pid(w, "updater"), "SIGKILL");
    await sending;
    await fleet.startUpdater(w);
    const v = (await fleet.health(w)).trust?.version;
    if (v !== undefined) seen.add(v);
    expect(readTrustDocument(readFileSync(w.paths.trust)).ok).toBe(true);
  }
  expect([...seen].every((v) => v === held || v === held + 1)).toBe(true);
});
