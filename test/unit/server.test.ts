/**
 * The daemon app is a fetch function: called with `new Request`, no TLS and no
 * port. Errors come back as {error:{code,message,detail?}} with the mapped status.
 */
import { expect, test } from "bun:test";
import { z } from "zod";
import { createApp, route } from "../../src/daemons/server.ts";
import { defineRoute, routeKey, type RouteSpec } from "../../src/protocol/route.ts";
import { agentApi } from "../../src/protocol/agent.ts";
import { updaterApi } from "../../src/protocol/updater.ts";
import { agentRoutes, agentLocalRoutes } from "../../src/daemons/agent/routes.ts";
import { DecnetError } from "../../src/lib/errors.ts";
import { createLogger } from "../../src/lib/log.ts";

// Unknown errors are logged with their stack; keep the test output quiet.
const log = createLogger("test");
log.error = Object.assign(() => {}, { raw: () => {} });
const any = z.unknown();
const app = createApp(
  [
    route(defineRoute({ method: "GET", path: "/boom", response: any }), () => { throw new Error("secret internals"); }),
    route(defineRoute({ method: "GET", path: "/busy", response: any }), () => { throw new DecnetError("busy", "another operation is in flight"); }),
    route(defineRoute({ method: "POST", path: "/echo", body: z.object({ n: z.number() }), response: z.object({ twice: z.number() }) }), ({ body }) => ({ twice: body.n * 2 })),
  ],
  log,
);

async function call(method: string, path: string, body?: string) {
  const res = await app(new Request(`http://x${path}`, { method, body }));
  return { status: res.status, body: await res.json() };
}

test("routing, validation and the error body", async () => {
  expect(await Promise.all([
    call("POST", "/echo", '{"n":21}'),
    call("POST", "/echo", '{"n":"x"}'),
    call("POST", "/echo", "not json"),
    call("GET", "/echo"),
    call("GET", "/nope"),
    call("GET", "/busy"),
    call("GET", "/boom"),
  ])).toEqual([
    { status: 200, body: { twice: 42 } },
    { status: 400, body: { error: { code: "bad_request", message: "invalid request body", detail: [{ path: "n", message: "Invalid input: expected number, received string" }] } } },
    { status: 400, body: { error: { code: "bad_request", message: "request body is not JSON" } } },
    { status: 405, body: { error: { code: "method_not_allowed", message: "GET is not allowed on /echo" } } },
    { status: 404, body: { error: { code: "not_found", message: "no route /nope" } } },
    { status: 423, body: { error: { code: "busy", message: "another operation is in flight" } } },
    { status: 500, body: { error: { code: "internal", message: "internal error" } } },
  ]);
});

test("route tables are kept sorted, and each daemon serves exactly its protocol table", async () => {
  const { updaterRoutes, updaterLocalRoutes } = await import("../../src/daemons/updater/routes.ts");
  const deps = {} as never;
  const keys = (routes: { spec: RouteSpec }[]) => routes.map((r) => routeKey(r.spec));
  const specs = (api: Record<string, RouteSpec>) => Object.values(api).map(routeKey);
  const tables = { agent: keys(agentRoutes(deps)), updater: keys(updaterRoutes(deps)), agentLocal: keys(agentLocalRoutes(deps)), updaterLocal: keys(updaterLocalRoutes(deps)) };
  for (const k of Object.values(tables)) expect(k).toEqual([...k].sort());
  expect(tables).toEqual({ agent: specs(agentApi), updater: specs(updaterApi), agentLocal: ["GET /health"], updaterLocal: ["GET /health"] });
});

test("a refusal of a request with a body ends the connection, so an unread body is never drained", async () => {
  const conn = async (method: string, path: string, body?: string) => (await app(new Request(`http://x${path}`, { method, body }))).headers.get("connection");
  expect({
    refusedWithBody: await conn("POST", "/nope", "x".repeat(1000)),
    invalidBody: await conn("POST", "/echo", '{"n":"x"}'),
    okWithBody: await conn("POST", "/echo", '{"n":1}'),
    refusedWithout: await conn("GET", "/nope"),
  }).toEqual({ refusedWithBody: "close", invalidBody: "close", okWithBody: null, refusedWithout: null });
});
