/** The master's trust dir in process: every version it writes is one a worker takes, signing across a rotation, bad files named. */
import { expect, test } from "bun:test";
import { copyFileSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadSigner, readReleaseSignature, signReleaseFile } from "../../src/core/release-sign.ts";
import { pack, readReleaseManifest } from "../../src/core/release.ts";
import { addSigner, initTrust, loadTrust, revokeSigner, rotateRoot, setFloor, showTrust, trustPushChain } from "../../src/core/trust.ts";
import { DecnetError } from "../../src/lib/errors.ts";
import { trustPaths } from "../../src/lib/paths.ts";
import { readTarball } from "../../src/lib/tarball.ts";
import { checkRelease, serializeSignature } from "../../src/protocol/signature.ts";
import { type TrustDocument, checkTrustUpdate } from "../../src/protocol/trust.ts";
import { SCRIPT, manifest, tgz } from "../fixtures/tar.ts";
import { tempDir } from "../fixtures/trust.ts";
import { useTempHome } from "../fixtures/temp-home.ts";

// `pack` keeps each release's block index in DECNET_HOME's cache: a home of this file's own, never the user's.
useTempHome("decnet-trustdir-home-");

const now = new Date();
const mode = (p: string) => (statSync(p).mode & 0o777).toString(8);

async function entries(file: string): Promise<string[]> {
  const names: string[] = [];
  await readTarball(Bun.file(file).stream(), (e) => { names.push(e.path); e.skip(); });
  return names;
}

async function smallRelease(dir: string, version: string): Promise<string> {
  const exe = join(dir, `exe-${version}`);
  writeFileSync(exe, SCRIPT.replace("6.6.6", version), { mode: 0o755 });
  return (await pack({ file: exe, version, info: {}, target: "linux-x64", out: join(dir, `r-${version}.tgz`) })).file;
}

/** What the updater will do: the signature's bytes as extracted, checked against the release. */
async function verdict(file: string, trust: TrustDocument, current: string | null = null) {
  const sig = await readReleaseSignature(file);
  const m = await readReleaseManifest(file);
  const r = checkRelease(trust, sig && serializeSignature(sig), { id: m.id, version: m.version, target: m.target }, { current, allowDowngrade: false, now });
  return r.ok ? `ok ${r.signer}` : r.code;
}

const caught = (f: () => unknown) => {
  try {
    f();
    return "no error";
  } catch (e) {
    return e instanceof DecnetError ? `${e.exitCode}: ${e.message}${e.hint ? ` — ${e.hint}` : ""}` : `not a DecnetError: ${e}`;
  }
};

test("every version the trust commands write is taken by a worker holding the one before, through a root rotation", () => {
  using tmp = tempDir("trust");
  const dir = join(tmp.path, "trust");
  const offline = join(tmp.path, "offline-root.key");
  const newRoot = join(tmp.path, "new-root.key");
  const init = initTrust({ dir });
  const paths = trustPaths(dir);
  const docs: TrustDocument[] = [init.doc];
  docs.push(addSigner({ dir, out: join(dir, "ci.key") }).doc);
  docs.push(revokeSigner({ dir, keyId: init.signer.id }).doc);
  renameSync(paths.rootKey, offline);
  const offlineMsg = caught(() => setFloor({ dir, version: "0.2.0" }));
  docs.push(setFloor({ dir, version: "0.2.0", rootKey: offline }).doc);
  const rotated = rotateRoot({ dir, rootKey: offline, newRootOut: newRoot });
  docs.push(rotated.doc);
  const oldRootNow = caught(() => setFloor({ dir, version: "0.3.0", rootKey: offline }));
  docs.push(setFloor({ dir, version: "0.3.0", rootKey: newRoot }).doc);
  const steps = docs.slice(1).map((d, i) => {
    const r = checkTrustUpdate(docs[i]!, d, now);
    return r.ok ? d.signed.version : r.code;
  });
  // A worker still on v1 gets the rotation document, then the latest.
  const chain = trustPushChain({ dir, held: 1 }).map((d) => d.signed.version);
  let held = docs[0]!;
  for (const v of chain) {
    const r = checkTrustUpdate(held, docs[v - 1]!, now);
    if (r.ok) held = r.doc;
  }
  expect({
    steps,
    skipRotation: checkTrustUpdate(docs[0]!, docs[5]!, now).ok,
    chain,
    walked: held.signed.version,
    offlineMsg,
    oldRootNow: oldRootNow.replace(offline, "OLD").replace(paths.doc, "TRUST"),
    modes: [mode(dir), mode(offline), mode(newRoot), mode(paths.signingKey), mode(join(dir, "ci.key")), mode(paths.doc)],
    show: (({ file, issued_at, ...v }) => ({ ...v, roots: v.roots.map((r) => r.id), signers: v.signers.map((s) => s.id) }))(showTrust({ dir })),
  }).toEqual({
    steps: [2, 3, 4, 5, 6],
    skipRotation: false,
    chain: [5, 6],
    walked: 6,
    offlineMsg: "2: the root key is offline: pass --root-key FILE",
    oldRootNow: `1: OLD (key ${init.root.id}) is not a root of TRUST (roots: ${rotated.newRoot.id}) — pass the current root key with --root-key FILE`,
    modes: ["700", "600", "600", "600", "600", "644"],
    show: { version: 6, roots: [rotated.newRoot.id], signers: [docs[1]!.signed.signers[1]!.id], revoked: [init.signer.id], floor: "0.3.0" },
  });
});

test("release sign: second entry, same id, accepted by checkRelease; revoked and pre-rotation signatures refused; re-signing fixes the latter", async () => {
  using tmp = tempDir("sign");
  const dir = join(tmp.path, "trust");
  initTrust({ dir });
  const file = await smallRelease(tmp.path, "0.2.0");
  const before = await readReleaseManifest(file);
  const beforeSize = statSync(file).size;
  const unsigned = await verdict(file, loadTrust(trustPaths(dir)));
  const signed = await signReleaseFile(file, loadSigner({ trustDir: dir }));
  const v1 = loadTrust(trustPaths(dir));
  const afterSign = { entries: await entries(file), id: (await readReleaseManifest(file)).id, verdict: await verdict(file, v1), grew: statSync(file).size - beforeSize === signed.bytesAdded };
  const kept = join(tmp.path, "kept.tgz");
  copyFileSync(file, kept);
  rotateRoot({ dir, newRootOut: join(tmp.path, "root2.key") });
  const v2 = loadTrust(trustPaths(dir));
  const preRotation = await verdict(kept, v2);
  const resigned = await signReleaseFile(kept, loadSigner({ trustDir: dir }));
  const revoked = revokeSigner({ dir, keyId: signed.signer, rootKey: join(tmp.path, "root2.key") }).doc;
  expect({
    unsigned,
    afterSign,
    preRotation,
    resigned: { verdict: await verdict(kept, v2), replaced: resigned.replaced, entries: await entries(kept) },
    revoked: await verdict(kept, revoked),
    signWithRevoked: caught(() => loadSigner({ trustDir: dir })).replaceAll(dir, "DIR"),
  }).toEqual({
    unsigned: "unsigned",
    afterSign: { entries: ["manifest.json", "signature.json", "decnet"], id: before.id, verdict: `ok ${signed.signer}`, grew: true },
    preRotation: "untrusted_signer",
    resigned: { verdict: `ok ${signed.signer}`, replaced: signed.signer, entries: ["manifest.json", "signature.json", "decnet"] },
    revoked: "untrusted_signer",
    signWithRevoked: `1: signing key ${signed.signer} (DIR/signing.key) is revoked in DIR/trust.json — certify a new one with \`decnet trust add-signer\``,
  });
});

test("signing refuses a tarball whose files do not match its manifest, and a version that is not semver", async () => {
  using tmp = tempDir("sign-bad");
  const dir = join(tmp.path, "trust");
  initTrust({ dir });
  const signer = loadSigner({ trustDir: dir });
  const lying = join(tmp.path, "lying.tgz");
  writeFileSync(lying, tgz([{ name: "manifest.json", data: manifest([{ path: "decnet", data: SCRIPT }], { version: "0.1.0" }) }, { name: "decnet", data: SCRIPT.replace("6.6.6", "7.7.7"), mode: 0o755 }]));
  const lyingBytes = readFileSync(lying);
  const notSemver = join(tmp.path, "ns.tgz");
  writeFileSync(notSemver, tgz([{ name: "manifest.json", data: manifest([{ path: "decnet", data: SCRIPT }], { version: "nightly" }) }, { name: "decnet", data: SCRIPT, mode: 0o755 }]));
  const msg = (p: Promise<unknown>) => p.then(() => "signed", (e) => (e as Error).message.replace(tmp.path, "TMP"));
  expect({
    lying: await msg(signReleaseFile(lying, signer)),
    untouched: readFileSync(lying).equals(lyingBytes),
    notSemver: await msg(signReleaseFile(notSemver, signer)),
  }).toEqual({
    lying: "TMP/lying.tgz: decnet does not match its manifest (size or sha256)",
    untouched: true,
    notSemver: 'release version "nightly" is not semver, and the floor and downgrade checks need one',
  });
});

test("a missing or broken trust.json, or a wrong key, is named with what to do", () => {
  using tmp = tempDir("trust-bad");
  const dir = join(tmp.path, "trust");
  const paths = trustPaths(dir);
  const missing = caught(() => showTrust({ dir }));
  initTrust({ dir });
  const signerId = loadSigner({ trustDir: dir, now }).cert.id;
  const again = caught(() => initTrust({ dir }));
  const wrongRoot = caught(() => setFloor({ dir, version: "1.0.0", rootKey: paths.signingKey }));
  const badFloor = caught(() => setFloor({ dir, version: "latest" }));
  const unknownKey = caught(() => revokeSigner({ dir, keyId: "0123456789abcdef" }));
  const text = readFileSync(paths.doc, "utf8");
  writeFileSync(paths.doc, text.replace('"floor": null', '"floor": "9.9.9"'));
  const edited = caught(() => showTrust({ dir }));
  writeFileSync(paths.doc, text.slice(0, 100));
  const truncated = caught(() => showTrust({ dir }));
  writeFileSync(paths.doc, text);
  writeFileSync(paths.rootKey, "not a key");
  const garbageKey = caught(() => setFloor({ dir, version: "1.0.0" }));
  const restore = "restore it from a backup or from a worker's copy; `decnet trust init --dir NEW` starts a new root, which workers holding this one will refuse";
  expect({ missing, again, wrongRoot, badFloor, unknownKey, edited, truncated, garbageKey }).toEqual({
    missing: `1: no trust document at ${paths.doc} — run \`decnet trust init\` to create one, or pass --dir DIR where it lives`,
    again: `2: ${paths.doc} already exists — a second root would split the fleet: see \`decnet trust show\`, or pass --dir DIR for a new trust dir`,
    wrongRoot: `1: ${paths.signingKey} (key ${signerId}) is not a root of ${paths.doc} (roots: ${showTrustRoot(text)}) — pass the current root key with --root-key FILE`,
    badFloor: '2: "latest" is not a semver version — a floor looks like 0.2.0 (versions compare as semver)',
    unknownKey: `2: no signing key 0123456789abcdef in ${paths.doc} — its signing keys: ${signerId}`,
    edited: `1: ${paths.doc} is not a usable trust document: the trust document is not validly signed by any of its own roots (damaged or edited by hand) — ${restore}`,
    truncated: `1: ${paths.doc} is not a usable trust document: the trust document is not JSON — ${restore}`,
    garbageKey: `1: ${paths.rootKey} is not a root key: no PEM private key in it`,
  });
});

function showTrustRoot(text: string): string {
  return (JSON.parse(text) as TrustDocument).signed.roots[0]!.id;
}
