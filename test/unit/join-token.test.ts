/**
 * The join token's format: it round-trips, any one changed character is
 * caught before use, and each malformed part is named; the proofs depend on
 * every token field and on their role.
 */
import { expect, test } from "bun:test";
import { formatToken, type JoinToken, newSecret, parseToken, tokenExpired } from "../../src/protocol/join-token.ts";
import { helloTranscript, masterFinishProof, finishTranscript, workerDoneProof, workerHelloProof } from "../../src/protocol/join.ts";

const t: JoinToken = { host: "edge-1", ca: "ab".repeat(32), secret: newSecret(), expires: 1_900_000_000 };

test("a token round-trips and states its expiry", () => {
  const s = formatToken(t);
  expect({ parsed: parseToken(`  ${s}\n`), shape: /^decnet-join:1:edge-1:(ab){32}:[A-Za-z0-9_-]{43}:1900000000:[0-9a-f]{8}$/.test(s), expired: [tokenExpired(t, new Date(1_899_999_999_000)), tokenExpired(t, new Date(1_900_000_000_000))] }).toEqual({
    parsed: t,
    shape: true,
    expired: [false, true],
  });
});

test("every single-character change is refused before the token is used", () => {
  const s = formatToken(t);
  const accepted: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s[i] === "a" ? "b" : "a";
    try {
      parseToken(s.slice(0, i) + c + s.slice(i + 1));
      accepted.push(i);
    } catch {}
  }
  expect(accepted).toEqual([]);
});

test("malformed tokens are named one line each", () => {
  const why = (s: string) => {
    try {
      parseToken(s);
      return "accepted";
    } catch (e) {
      return (e as Error).message;
    }
  };
  const forged = (over: Record<string, string>) => {
    const f = { host: t.host, ca: t.ca, secret: t.secret, expires: String(t.expires), ...over };
    return formatToken({ ...f, expires: f.expires as unknown as number });
  };
  expect({
    other: why("ghp_abcdef"),
    version: why("decnet-join:2:x"),
    short: why(formatToken(t).split(":").slice(0, 5).join(":")),
    long: why(`decnet-join:1:${"x".repeat(300)}`),
    host: why(forged({ host: "a.b" })),
    ca: why(forged({ ca: "xyz" })),
    secret: why(forged({ secret: "short" })),
    expiry: why(forged({ expires: "soon" })),
  }).toEqual({
    other: "not a join token (a join token begins with decnet-join:)",
    version: 'join token version "2" is not supported (this decnet reads version 1)',
    short: "join token is incomplete: copy the whole line `swarm enroll --join` printed",
    long: "join token is longer than 256 characters",
    host: "join token's host name is not a DNS label",
    ca: "join token's CA hash is not 64 hex digits",
    secret: "join token's secret is not 43 base64url characters",
    expiry: "join token's expiry is not a time",
  });
});

test("proofs change with every token field and differ by role", () => {
  const facts = { caPem: "ca", masterNonce: "m", workerNonce: "w", tlsCert: "tls", agentCsr: "a", updaterCsr: "u" };
  const hello = (tok: JoinToken) => workerHelloProof(tok, helloTranscript(tok, facts));
  const variants = [t, { ...t, host: "edge-2" }, { ...t, ca: "cd".repeat(32) }, { ...t, secret: newSecret() }, { ...t, expires: t.expires + 1 }];
  const fin = finishTranscript(helloTranscript(t, facts), { agentCert: "A", updaterCert: "U", trust: null });
  const roles = [workerHelloProof(t, fin), masterFinishProof(t, fin), workerDoneProof(t, fin)];
  expect({ distinctByField: new Set(variants.map(hello)).size, distinctByRole: new Set(roles).size }).toEqual({ distinctByField: 5, distinctByRole: 3 });
});
