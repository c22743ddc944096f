/** checkRelease: every refusal the updater answers 403 with, in the order it decides them, and hostile signature.json. */
import { expect, test } from "bun:test";
import { type CheckOptions, type ReleaseFacts, checkRelease, releaseSignedText, serializeSignature, signRelease } from "../../src/protocol/signature.ts";
import { type SignerCert, type TrustDocument, certifySigner } from "../../src/protocol/trust.ts";
import { LATER, NOW, type TestKey, makeDoc, newKey } from "../fixtures/trust.ts";

const R1 = newKey();
const S1 = newKey();
const S2 = newKey();
const stranger = newKey();

const trust = makeDoc({ version: 2, roots: [R1], signers: [{ key: S1 }], revoked: [S2.id] });
const cert = (k: TestKey, by: TestKey = R1, expires = LATER): SignerCert => certifySigner({ public: k.public, expires }, by);
const rel = (version: string, id = "a".repeat(64)): ReleaseFacts => ({ id, version, target: "linux-x64" });
const sign = (r: ReleaseFacts, k: TestKey = S1, c: SignerCert = cert(k)) => serializeSignature(signRelease(r, c, k.key));
const opts = (o: Partial<CheckOptions> = {}): CheckOptions => ({ current: "0.1.0", allowDowngrade: false, now: NOW, ...o });
const verdict = (doc: TrustDocument | null, sig: string | Uint8Array | null, r: ReleaseFacts, o = opts()) => {
  const x = checkRelease(doc, sig, r, o);
  return x.ok ? { ok: true, signer: x.signer } : { ok: false, code: x.code };
};

test("each decision: signed, unsigned, moved, uncertified, expired, revoked, floor and downgrade", () => {
  const v2 = rel("0.2.0");
  const other = rel("0.2.0", "b".repeat(64));
  const floored = makeDoc({ version: 3, roots: [R1], signers: [{ key: S1 }], floor: "0.2.0" });
  // A signature for `other`, with its release fields rewritten to claim `v2`.
  const relabelled = JSON.stringify({ ...JSON.parse(sign(other)), release: v2 });
  expect({
    noTrust: verdict(null, null, v2),
    signed: verdict(trust, sign(v2), v2),
    unsigned: verdict(trust, null, v2),
    moved: verdict(trust, sign(other), v2),
    relabelled: verdict(trust, relabelled, v2),
    otherTarget: verdict(trust, sign(v2), { ...v2, target: "linux-arm64" }),
    otherVersion: verdict(trust, sign(v2), { ...v2, version: "0.2.1" }),
    neverCertified: verdict(trust, sign(v2, stranger, cert(stranger, stranger)), v2),
    certByStrangerNamingOurRoot: verdict(trust, sign(v2, stranger, { ...cert(stranger, stranger), root: R1.id }), v2),
    expired: verdict(trust, sign(v2, S1, cert(S1, R1, "2026-11-28T03:59:59Z")), v2),
    revoked: verdict(trust, sign(v2, S2), v2),
    // Certified later than the worker's document: the carried certification is enough.
    newSigner: verdict(makeDoc({ roots: [R1] }), sign(v2, S2), v2),
    belowFloor: verdict(floored, sign(rel("0.1.9")), rel("0.1.9"), opts({ current: null })),
    belowFloorAllowed: verdict(floored, sign(rel("0.1.9")), rel("0.1.9"), opts({ current: null, allowDowngrade: true })),
    prereleaseBelowFloor: verdict(floored, sign(rel("0.2.0-rc.1")), rel("0.2.0-rc.1"), opts({ current: null })),
    atFloor: verdict(floored, sign(v2), v2, opts({ current: null })),
    downgrade: verdict(trust, sign(rel("0.1.0-next")), rel("0.1.0-next")),
    downgradeAllowed: verdict(trust, sign(rel("0.1.0-next")), rel("0.1.0-next"), opts({ allowDowngrade: true })),
    sameVersion: verdict(trust, sign(rel("0.1.0")), rel("0.1.0")),
    firstInstall: verdict(trust, sign(rel("0.0.1")), rel("0.0.1"), opts({ current: null })),
    fromUnsignedNonSemver: verdict(trust, sign(rel("0.0.1")), rel("0.0.1"), opts({ current: "agent-silent" })),
  }).toEqual({
    noTrust: { ok: true, signer: null },
    signed: { ok: true, signer: S1.id },
    unsigned: { ok: false, code: "unsigned" },
    moved: { ok: false, code: "bad_signature" },
    relabelled: { ok: false, code: "bad_signature" },
    otherTarget: { ok: false, code: "bad_signature" },
    otherVersion: { ok: false, code: "bad_signature" },
    neverCertified: { ok: false, code: "untrusted_signer" },
    certByStrangerNamingOurRoot: { ok: false, code: "untrusted_signer" },
    expired: { ok: false, code: "untrusted_signer" },
    revoked: { ok: false, code: "untrusted_signer" },
    newSigner: { ok: true, signer: S2.id },
    belowFloor: { ok: false, code: "below_floor" },
    belowFloorAllowed: { ok: false, code: "below_floor" },
    prereleaseBelowFloor: { ok: false, code: "below_floor" },
    atFloor: { ok: true, signer: S1.id },
    downgrade: { ok: false, code: "downgrade" },
    downgradeAllowed: { ok: true, signer: S1.id },
    sameVersion: { ok: true, signer: S1.id },
    firstInstall: { ok: true, signer: S1.id },
    fromUnsignedNonSemver: { ok: true, signer: S1.id },
  });
});

test("each refusal says what to do", () => {
  const v2 = rel("0.2.0");
  const msg = (sig: string | null, r = v2, o = opts(), doc = trust) => {
    const x = checkRelease(doc, sig, r, o);
    return x.ok ? "" : x.message;
  };
  const floored = makeDoc({ version: 3, roots: [R1], signers: [{ key: S1 }], floor: "0.2.0" });
  expect({
    unsigned: msg(null),
    moved: msg(sign(rel("0.2.0", "b".repeat(64)))),
    revoked: msg(sign(v2, S2)),
    expired: msg(sign(v2, S1, cert(S1, R1, "2026-01-01T00:00:00Z"))),
    floor: msg(sign(rel("0.1.0")), rel("0.1.0"), opts({ allowDowngrade: true }), floored),
    downgrade: msg(sign(rel("0.0.9")), rel("0.0.9")),
  }).toEqual({
    unsigned: "release 0.2.0 aaaaaaaaaaaa is not signed and this worker requires signed releases: sign it with `decnet release sign FILE` (or `release pack|build --sign`) and push again",
    moved: "release 0.2.0 aaaaaaaaaaaa (linux-x64): its signature.json was made for another release (0.2.0 bbbbbbbbbbbb, linux-x64): sign it with `decnet release sign FILE` (or `release pack|build --sign`) and push again",
    revoked: `release 0.2.0 aaaaaaaaaaaa: signing key ${S2.id} was revoked (trust document version 2): certify a signing key with \`decnet trust add-signer\` (and push the trust document), then re-sign`,
    expired: `release 0.2.0 aaaaaaaaaaaa: signing key ${S1.id} expired at 2026-01-01T00:00:00Z: certify a signing key with \`decnet trust add-signer\` (and push the trust document), then re-sign`,
    floor: "release 0.1.0 aaaaaaaaaaaa is below the fleet's floor 0.2.0 (trust document version 3): push a release ≥ 0.2.0; --allow-downgrade does not lift the floor",
    downgrade: "release 0.0.9 aaaaaaaaaaaa is older than the running 0.1.0: push a newer release, or pass `swarm update --allow-downgrade` if you mean it",
  });
});

test("the release signature covers id, version, target and signer under its own domain line", () => {
  const r = rel("0.1.0-4");
  expect(releaseSignedText(r, S1.id)).toBe(`decnet-release/1\nid ${"a".repeat(64)}\nversion 0.1.0-4\ntarget linux-x64\nsigner ${S1.id}\n`);
});

test("a malformed signature.json is bad_signature with the reason, never a throw", () => {
  const v2 = rel("0.2.0");
  const good = JSON.parse(sign(v2));
  const mutate = (f: (d: any) => void) => {
    const d = structuredClone(good);
    f(d);
    return JSON.stringify(d);
  };
  const cases: Record<string, string | Uint8Array> = {
    notJson: "signed, honest",
    empty: "",
    wrongType: mutate((d) => { d.release.version = 2; }),
    huge: JSON.stringify({ ...good, pad: "x".repeat(5000) }),
    badUtf8: new Uint8Array([0xc3, 0x28]),
    shortKey: mutate((d) => { d.signer.public = Buffer.alloc(16).toString("base64"); }),
    unknownAlg: mutate((d) => { d.signer.alg = "ecdsa-p256"; }),
    sigAsHex: mutate((d) => { d.sig = "ab".repeat(64); }),
    notSemver: mutate((d) => { d.release.version = "latest"; }),
    targetWithNewline: mutate((d) => { d.release.target = "linux-x64\nsigner x"; }),
    extraField: mutate((d) => { d.comment = "trust me"; }),
    format0: mutate((d) => { d.format = 0; }),
  };
  const results = Object.fromEntries(Object.entries(cases).map(([k, v]) => [k, verdict(trust, v, v2)]));
  expect(results).toEqual(Object.fromEntries(Object.keys(cases).map((k) => [k, { ok: false, code: "bad_signature" }])));
  const m = checkRelease(trust, cases.unknownAlg!, v2, opts());
  expect(m.ok ? "" : m.message).toBe(
    'release 0.2.0 aaaaaaaaaaaa: signature.json is not valid: signer.alg: unknown algorithm "ecdsa-p256" (only ed25519): sign it with `decnet release sign FILE` (or `release pack|build --sign`) and push again',
  );
});
