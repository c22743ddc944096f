/**
 * No internals leave a daemon: malformed requests over raw TLS sockets (the
 * master's real certificate, real daemons) get the JSON error body — or,
 * where Bun's parser answers before the app, a bare status with no body —
 * and never a path, a stack or source text. `Expect: 100-continue` gets one
 * final answer, and a refused upload's connection is closed rather than
 * drained.
 */
import { beforeAll, expect, test } from "bun:test";
import { connect } from "node:tls";
import { release, type Worker } from "../fleet/harness.ts";
import { useFleet } from "../fleet/use-fleet.ts";

const fleet = useFleet({ workers: 1, start: ["w1"], env: { DECNET_MAX_UPLOAD_BYTES: String(64 * 1024 * 1024) } });
let w: Worker;
beforeAll(async () => {
  w = fleet.worker("w1");
  expect((await fleet.push(w, (await release("v1")).file)).status).toBe(200);
}, 180_000);

interface Raw {
  /** Status lines in order: an interim 100 first, when one came. */
  statuses: number[];
  headers: Record<string, string>;
  body: string;
  /** Body bytes the client had sent when the connection ended (Expect cases). */
  sent: number;
  closed: boolean;
}

/**
 * One request over a raw mTLS socket as the master. With `stream`, the body
 * is sent only after a 100 Continue, in 64 KiB chunks, until the server
 * answers or closes.
 */
function raw(port: number, head: string, o: { stream?: number } = {}): Promise<Raw> {
  const m = fleet.master();
  return new Promise((resolve) => {
    const s = connect({ host: w.address, port, cert: m.cert, key: m.key, ca: m.ca, checkServerIdentity: () => undefined });
    const chunks: Buffer[] = [];
    let sent = 0;
    let closed = false;
    let pumping = false;
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    const text = () => Buffer.concat(chunks).toString("latin1");
    const finalSeen = () => /HTTP\/1\.1 [2-5]\d\d /.test(text());
    const pump = () => {
      while (!s.destroyed && !finalSeen() && sent < (o.stream ?? 0)) {
        sent += chunk.byteLength;
        if (!s.write(chunk)) return void s.once("drain", pump);
      }
    };
    const done = () => {
      clearTimeout(timer);
      const all = text();
      const statuses = [...all.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((x) => Number(x[1]));
      const last = all.lastIndexOf("HTTP/1.");
      const [head = "", body = ""] = all.slice(last).split("\r\n\r\n", 2);
      const headers = Object.fromEntries(head.split("\r\n").slice(1).map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
      resolve({ statuses, headers, body, sent, closed });
    };
    s.on("secureConnect", () => s.write(head));
    s.on("data", (c) => {
      chunks.push(c as Buffer);
      if (o.stream && !pumping && text().includes("100 Continue")) {
        pumping = true;
        pump();
      }
    });
    s.on("close", () => {
      closed = true;
      done();
    });
    s.on("error", () => {});
    // A connection the server keeps open is reported as such (closed: false).
    const timer = setTimeout(() => {
      s.destroy();
      done();
    }, 5_000);
  });
}

/** What a client learns: status, whether the body is the JSON error body (its code), its size, and any internals. */
function answer(r: Raw) {
  let code: string | null = null;
  try {
    code = (JSON.parse(r.body) as { error: { code: string } }).error.code;
  } catch {}
  const internals = [fleet.root, "/tmp/", "/work/", "node_modules", ".ts:", "    at ", "<html", "Bun v"].filter((x) => r.body.includes(x) || Object.values(r.headers).some((h) => h.includes(x)));
  return { statuses: r.statuses, code, bodyBytes: r.body.length, connection: r.headers.connection ?? null, internals };
}

test("malformed requests get the error body, or Bun's bare status, and never a path or source", async () => {
  const got: Record<string, ReturnType<typeof answer>> = {};
  for (const [port, who] of [[8766, "updater"], [8765, "agent"]] as const) {
    got[`${who}: Host ../../etc`] = answer(await raw(port, "GET /health HTTP/1.1\r\nHost: ../../etc\r\nConnection: close\r\n\r\n"));
    got[`${who}: HTTP/1.0 without Host`] = answer(await raw(port, "GET /health HTTP/1.0\r\n\r\n"));
    got[`${who}: Content-Length abc`] = answer(await raw(port, "POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\nConnection: close\r\n\r\n"));
    got[`${who}: 8 kB query`] = answer(await raw(port, `GET /nope?${"q".repeat(8192)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
    got[`${who}: 16 kB query`] = answer(await raw(port, `GET /health?${"q".repeat(16 * 1024)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
    got[`${who}: chunked and Content-Length`] = answer(await raw(port, "POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"));
    got[`${who}: HTTP/2.0 request line`] = answer(await raw(port, "GET /health HTTP/2.0\r\nHost: x\r\n\r\n"));
    got[`${who}: unknown method`] = answer(await raw(port, "BREW /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  }
  // Over Bun's own body limit (the agent's 1 MiB; the updater sets its transport limit at 1 TiB and answers its own 413).
  got["agent: body over 1 MiB"] = answer(await raw(8765, `POST /deploy HTTP/1.1\r\nHost: x\r\nContent-Length: ${2 * 1024 * 1024}\r\n\r\n`));
  // A query the route parses: zod refuses it with the error body.
  got["updater: 8 kB release id"] = answer(await raw(8766, `GET /blocks?release=${"f".repeat(8192)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
  const appError = (code: string) => ({ statuses: [code === "not_found" ? 404 : 400], code, bodyBytes: expect.any(Number), connection: null, internals: [] });
  // Bun's parser answers these itself: a bare status, `Connection: close`, no body.
  const bunAnswer = (status: number) => ({ statuses: [status], code: null, bodyBytes: 0, connection: "close", internals: [] });
  const want: Record<string, unknown> = {};
  for (const who of ["updater", "agent"]) {
    want[`${who}: Host ../../etc`] = appError("bad_request");
    want[`${who}: HTTP/1.0 without Host`] = appError("bad_request");
    want[`${who}: Content-Length abc`] = bunAnswer(400);
    want[`${who}: 8 kB query`] = appError("not_found");
    want[`${who}: 16 kB query`] = bunAnswer(431);
    want[`${who}: chunked and Content-Length`] = bunAnswer(400);
    want[`${who}: HTTP/2.0 request line`] = bunAnswer(505);
    // Bun closes the connection without a word.
    want[`${who}: unknown method`] = { statuses: [], code: null, bodyBytes: 0, connection: null, internals: [] };
  }
  want["agent: body over 1 MiB"] = bunAnswer(413);
  want["updater: 8 kB release id"] = appError("bad_request");
  expect(got).toEqual(want as typeof got);
});

test("Expect: 100-continue gets one final answer; a refused upload closes the connection instead of draining the body", async () => {
  const expectHead = (path: string, length: number) => `POST ${path} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: ${length}\r\n\r\n`;
  // Declared over the 64 MiB limit: refused at once, while the client keeps sending.
  const tooLarge = await raw(8766, expectHead("/update", 1024 ** 3), { stream: 1024 ** 3 });
  // Declared within the limit, but not a release: refused after the first bytes.
  const notRelease = await raw(8766, expectHead("/update", 32 * 1024 ** 2), { stream: 32 * 1024 ** 2 });
  // Bun answers 100 before the app runs, even where the app then refuses without reading.
  const unknown = await raw(8766, expectHead("/nope", 1024 ** 3), { stream: 1024 ** 3 });
  const health = await fleet.health(w);
  expect({
    tooLarge: { ...answer(tooLarge), closed: tooLarge.closed, sentLittle: tooLarge.sent < 16 * 1024 ** 2 },
    notRelease: { ...answer(notRelease), closed: notRelease.closed, sentLittle: notRelease.sent < 16 * 1024 ** 2 },
    unknown: { ...answer(unknown), closed: unknown.closed, sentLittle: unknown.sent < 16 * 1024 ** 2 },
    worker: { busy: health.busy, healthy: health.agent.healthy, leaks: health.leaks },
  }).toEqual({
    tooLarge: { statuses: [100, 413], code: "too_large", bodyBytes: expect.any(Number), connection: "close", internals: [], closed: true, sentLittle: true },
    notRelease: { statuses: [100, 400], code: "bad_archive", bodyBytes: expect.any(Number), connection: "close", internals: [], closed: true, sentLittle: true },
    unknown: { statuses: [100, 404], code: "not_found", bodyBytes: expect.any(Number), connection: "close", internals: [], closed: true, sentLittle: true },
    worker: { busy: null, healthy: true, leaks: { deleted_fds: 0 } },
  });
});
