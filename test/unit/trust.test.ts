/** The trust document: canonical signed text, whole-document checks, updates (replay, rotation), rollback floor, hostile input. */
import { expect, test } from "bun:test";
import { keyId } from "../../src/protocol/ed25519.ts";
import { type TrustDocument, checkRollback, checkTrustUpdate, readTrustDocument, serializeTrust, signTrustDocument, trustSignedText, trustSummary } from "../../src/protocol/trust.ts";
import { LATER, NOW, makeDoc, newKey } from "../fixtures/trust.ts";

const R1 = newKey();
const R2 = newKey();
const S1 = newKey();
const S2 = newKey();
const evil = newKey();

/** A field-by-field copy in another key order, compact: the same document to a verifier. */
function reordered(doc: TrustDocument): string {
  const rev = <T extends object>(o: T) => Object.fromEntries(Object.entries(o).reverse());
  const s = doc.signed;
  return JSON.stringify(rev({ ...doc, signed: rev({ ...s, roots: s.roots.map(rev), signers: [...s.signers].reverse().map(rev) }), signatures: doc.signatures.map(rev) }));
}

test("what is signed is a canonical text of the fields: key order, spacing and list order do not change it", () => {
  const doc = makeDoc({ roots: [R1], signers: [{ key: S1 }, { key: S2 }], revoked: [evil.id], floor: "0.1.0" });
  const again = readTrustDocument(reordered(doc));
  const [a, b] = [doc.signed.signers[0]!, doc.signed.signers[1]!].sort((x, y) => (x.id < y.id ? -1 : 1));
  expect({ ok: again.ok, same: again.ok && trustSignedText(again.value.signed) === trustSignedText(doc.signed), text: trustSignedText(doc.signed) }).toEqual({
    ok: true,
    same: true,
    text: [
      "decnet-trust/1",
      "version 1",
      "issued_at 2026-11-28T04:00:00Z",
      `root ${R1.id} ed25519 ${R1.public}`,
      `signer ${a!.id} ed25519 ${a!.public} ${LATER} ${R1.id} ${a!.certification}`,
      `signer ${b!.id} ed25519 ${b!.public} ${LATER} ${R1.id} ${b!.certification}`,
      `revoked ${evil.id}`,
      "floor 0.1.0",
      "",
    ].join("\n"),
  });
});

test("changing any signed field by hand breaks the document", () => {
  const doc = makeDoc({ roots: [R1], signers: [{ key: S1 }], floor: "0.2.0" });
  const edit = (f: (d: TrustDocument) => void) => {
    const d = structuredClone(doc);
    f(d);
    const r = readTrustDocument(serializeTrust(d));
    return r.ok ? "accepted" : r.message;
  };
  const notSigned = "the trust document is not validly signed by any of its own roots (damaged or edited by hand)";
  expect({
    version: edit((d) => { d.signed.version = 9; }),
    floor: edit((d) => { d.signed.floor = "0.1.0"; }),
    revoke: edit((d) => { d.signed.revoked = [S2.id]; }),
    expiry: edit((d) => { d.signed.signers[0]!.expires = "2100-01-01T00:00:00Z"; }),
    // A signer added with a certification copied from another key.
    signer: edit((d) => { d.signed.signers.push({ ...d.signed.signers[0]!, id: S2.id, public: S2.public }); }),
  }).toEqual({ version: notSigned, floor: notSigned, revoke: notSigned, expiry: notSigned, signer: notSigned });
});

test("a document whose signature is fine but one of whose signers is not certified is refused", () => {
  const d = makeDoc({ roots: [R1], signers: [{ key: S1, by: evil }] });
  // Re-sign with R1 so only the certification is wrong.
  const doc = signTrustDocument(d.signed, [R1]);
  expect(readTrustDocument(serializeTrust(doc))).toEqual({ ok: false, code: "bad_request", message: `signing key ${S1.id} in the trust document is not validly certified by one of its roots` });
});

test("trust updates: first taken as is, then only newer documents signed by a held root", () => {
  const v1 = makeDoc({ version: 1, roots: [R1], signers: [{ key: S1, expires: "2026-01-01T00:00:00Z" }] });
  const v2 = makeDoc({ version: 2, roots: [R1], signers: [{ key: S2 }], revoked: [S1.id], floor: "0.2.0" });
  const forked = makeDoc({ version: 2, roots: [R1], signers: [{ key: S2 }] });
  // An attacker's own root, signing its own document: whole, but not ours.
  const foreign = makeDoc({ version: 5, roots: [evil] });
  // Our root listed, but the signature made with a signing key.
  const bySigner = signTrustDocument(makeDoc({ version: 3, roots: [R1] }).signed, [{ id: R1.id, key: S1.key }]);
  const r = (held: TrustDocument | null, offered: TrustDocument) => {
    const x = checkTrustUpdate(held, offered, NOW);
    return x.ok ? { ok: true, version: x.doc.signed.version, first: x.first, unchanged: x.unchanged, expired: x.expiredSigners } : { ok: false, code: x.code };
  };
  expect({
    first: r(null, v1),
    newer: r(v1, v2),
    again: r(v2, v2),
    replayed: r(v2, v1),
    forked: r(v2, forked),
    foreign: r(v2, foreign),
    bySigner: r(v2, bySigner),
  }).toEqual({
    first: { ok: true, version: 1, first: true, unchanged: false, expired: [S1.id] },
    newer: { ok: true, version: 2, first: false, unchanged: false, expired: [] },
    again: { ok: true, version: 2, first: false, unchanged: true, expired: [] },
    replayed: { ok: false, code: "downgrade" },
    forked: { ok: false, code: "downgrade" },
    foreign: { ok: false, code: "untrusted_signer" },
    bySigner: { ok: false, code: "bad_signature" },
  });
  const msg = checkTrustUpdate(v2, v1, NOW);
  expect(msg.ok ? "" : msg.message).toBe("trust document version 1 is not newer than the version 2 this worker holds: an older or forked document is refused and the held one stays (send the latest trust.json)");
});

test("root rotation: the new root is introduced by the old one, and from then on only the new one counts", () => {
  const v1 = makeDoc({ version: 1, roots: [R1], signers: [{ key: S1 }] });
  // Signed by the old root (the chain) and the new one (proof it holds the key).
  const v2 = makeDoc({ version: 2, roots: [R2], signers: [{ key: S1, by: R2 }], signedBy: [R1, R2] });
  const v3 = makeDoc({ version: 3, roots: [R2], signers: [{ key: S1, by: R2 }], floor: "0.3.0" });
  // The old root, still in someone's hands, trying to take the fleet back.
  const back = makeDoc({ version: 4, roots: [R1], signers: [{ key: S1 }] });
  // A new root the old one vouched for but which never signed: not whole.
  const unproven = makeDoc({ version: 2, roots: [R2], signedBy: [R1] });
  const r = (held: TrustDocument, offered: TrustDocument) => {
    const x = checkTrustUpdate(held, offered, NOW);
    return x.ok ? "accepted" : x.code;
  };
  expect({ rotate: r(v1, v2), next: r(v2, v3), skip: r(v1, v3), oldRootBack: r(v3, back), unproven: r(v1, unproven), summary: trustSummary(v3) }).toEqual({
    rotate: "accepted",
    next: "accepted",
    // A worker that missed the rotation cannot jump to a document only the new root signed.
    skip: "untrusted_signer",
    oldRootBack: "untrusted_signer",
    unproven: "bad_signature",
    summary: { version: 3, roots: [R2.id], floor: "0.3.0" },
  });
});

test("rollback is refused only below the floor, and a version that is not semver cannot pass a floor", () => {
  const floored = makeDoc({ roots: [R1], floor: "0.2.0" });
  const r = (doc: TrustDocument | null, v: string) => {
    const x = checkRollback(doc, v);
    return x.ok ? "ok" : x.code;
  };
  expect({
    noTrust: r(null, "0.0.1"),
    noFloor: r(makeDoc({ roots: [R1] }), "0.0.1"),
    below: r(floored, "0.1.9"),
    prerelease: r(floored, "0.2.0-rc.1"),
    at: r(floored, "0.2.0"),
    above: r(floored, "1.0.0"),
    notSemver: r(floored, "agent-silent"),
  }).toEqual({ noTrust: "ok", noFloor: "ok", below: "below_floor", prerelease: "below_floor", at: "ok", above: "ok", notSemver: "below_floor" });
});

test("every malformed trust document is a typed bad_request naming the problem, never a throw", () => {
  const good = JSON.parse(serializeTrust(makeDoc({ roots: [R1], signers: [{ key: S1 }] })));
  const mutate = (f: (d: any) => void) => {
    const d = structuredClone(good);
    f(d);
    return JSON.stringify(d);
  };
  const cases: Record<string, string | Uint8Array> = {
    notJson: "{not json",
    empty: "",
    nullDoc: "null",
    array: "[]",
    wrongType: mutate((d) => { d.signed.version = "2"; }),
    huge: " ".repeat(64 * 1024 + 1),
    deep: "[".repeat(60_000),
    badUtf8: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]),
    shortKey: mutate((d) => { d.signed.roots[0].public = Buffer.alloc(31).toString("base64"); }),
    longKey: mutate((d) => { d.signed.roots[0].public = Buffer.alloc(33).toString("base64"); }),
    sloppyBase64: mutate((d) => { d.signed.roots[0].public = d.signed.roots[0].public.replace(/.=$/, "B="); }),
    shortSig: mutate((d) => { d.signatures[0].sig = Buffer.alloc(63).toString("base64"); }),
    unknownAlg: mutate((d) => { d.signed.roots[0].alg = "rsa-pss"; }),
    extraField: mutate((d) => { d.signed.note = "hi"; }),
    wrongId: mutate((d) => { d.signed.roots[0].id = "0".repeat(16); }),
    duplicateRoot: mutate((d) => { d.signed.roots.push(d.signed.roots[0]); }),
    tooManyRevoked: mutate((d) => { d.signed.revoked = Array.from({ length: 257 }, (_, i) => i.toString(16).padStart(16, "0")); }),
    badDate: mutate((d) => { d.signed.issued_at = "2026-02-30T00:00:00Z"; }),
    badFloor: mutate((d) => { d.signed.floor = "v1"; }),
    noSignatures: mutate((d) => { d.signatures = []; }),
    format2: mutate((d) => { d.format = 2; }),
  };
  const results = Object.fromEntries(Object.entries(cases).map(([k, v]) => {
    const r = readTrustDocument(v);
    return [k, r.ok ? "accepted" : r.code];
  }));
  expect(results).toEqual(Object.fromEntries(Object.keys(cases).map((k) => [k, "bad_request"])));
  const msg = (k: string) => { const r = readTrustDocument(cases[k]!); return r.ok ? "" : r.message; };
  expect({ huge: msg("huge"), notJson: msg("notJson"), shortKey: msg("shortKey"), unknownAlg: msg("unknownAlg"), wrongId: msg("wrongId") }).toEqual({
    huge: "the trust document is 65537 bytes, more than the 65536 allowed",
    notJson: "the trust document is not JSON",
    shortKey: "the trust document is not valid: signed.roots.0.public: an Ed25519 public key: 32 bytes in base64",
    unknownAlg: 'the trust document is not valid: signed.roots.0.alg: unknown algorithm "rsa-pss" (only ed25519)',
    wrongId: "the trust document is not valid: signed: a key id is not the sha256 of its key",
  });
  expect(keyId(R1.public)).toBe(R1.id);
});
