/**
 * The only Bun.serve call. A daemon is a route table turned into a
 * fetch(Request) function: bodies and queries are zod-parsed here, a
 * DecnetError becomes the error body with its status, anything else is logged
 * and answered as a bare 500.
 */
import type { Server } from "bun";
import { chmodSync, unlinkSync } from "node:fs";
import type { z } from "zod";
import type { BodyOf, QueryOf, ResponseOf, RouteSpec } from "../protocol/route.ts";
import { routeKey } from "../protocol/route.ts";
import { ERROR_STATUS, type ErrorBody, type ErrorCode, PROTOCOL_VERSION, VERSION_HEADER } from "../protocol/common.ts";
import { DecnetError } from "../lib/errors.ts";
import { listeners } from "../lib/procfs.ts";
import type { Logger } from "../lib/log.ts";
import type { ServerTls } from "../lib/tls.ts";

export interface Ctx<S extends RouteSpec = RouteSpec> {
  req: Request;
  url: URL;
  body: BodyOf<S>;
  query: QueryOf<S>;
  server?: Server<undefined>;
}

type Answer<S extends RouteSpec> = ResponseOf<S> | Response;

/** A route of the protocol (its spec) and what serves it. */
export interface Route<S extends RouteSpec = RouteSpec> {
  spec: S;
  handle(ctx: Ctx<S>): Promise<Answer<S>> | Answer<S>;
}

export type Routes = Route<any>[];

export function route<S extends RouteSpec>(spec: S, handle: Route<S>["handle"]): Route<S> {
  return { spec, handle };
}

export function json(data: unknown, status = 200): Response {
  return Response.json(data, { status, headers: { [VERSION_HEADER]: String(PROTOCOL_VERSION) } });
}

export function errorResponse(code: ErrorCode, message: string, detail?: unknown): Response {
  const body: ErrorBody = { error: { code, message, ...(detail === undefined ? {} : { detail }) } };
  return json(body, ERROR_STATUS[code]);
}

function zodDetail(e: z.ZodError) {
  return e.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
}

export type App = (req: Request, server?: Server<undefined>) => Promise<Response>;

/**
 * The route table as a fetch function. Everything, URL parsing included,
 * runs inside the error boundary: a request that cannot be understood gets
 * the error body, and nothing internal (paths, stacks, source) ever leaves.
 */
export function createApp(routes: Routes, log: Logger): App {
  const table = new Map<string, Route<any>>();
  for (const r of routes) {
    const key = routeKey(r.spec);
    if (table.has(key)) throw new Error(`two routes for ${key}`);
    table.set(key, r);
  }
  return async (req, server) => {
    const res = await answer(req, server);
    // A refusal may leave the body unread, and Bun would read all of it (a
    // declared terabyte too) to keep the connection: end the connection
    // instead. With `Expect: 100-continue` (Bun answers 100 before the app
    // runs) the client then stops sending at the final answer.
    if (res.status >= 400 && (req.body !== null || req.headers.has("content-length") || req.headers.has("transfer-encoding"))) res.headers.set("connection", "close");
    return res;
  };

  async function answer(req: Request, server?: Server<undefined>): Promise<Response> {
    let key = `${req.method} ?`;
    try {
      let url: URL;
      try {
        url = new URL(req.url);
      } catch {
        return errorResponse("bad_request", "the request's URL or Host header cannot be parsed");
      }
      key = `${req.method} ${url.pathname}`;
      const r = table.get(key);
      if (!r) {
        const known = routes.some((x) => x.spec.path === url.pathname);
        return known
          ? errorResponse("method_not_allowed", `${req.method} is not allowed on ${url.pathname}`)
          : errorResponse("not_found", `no route ${url.pathname}`);
      }
      let body: unknown;
      if (r.spec.body && r.spec.body !== "stream") {
        let raw: unknown;
        try {
          raw = await req.json();
        } catch {
          return errorResponse("bad_request", "request body is not JSON");
        }
        const parsed = r.spec.body.safeParse(raw);
        if (!parsed.success) return errorResponse("bad_request", "invalid request body", zodDetail(parsed.error));
        body = parsed.data;
      }
      let query: unknown;
      if (r.spec.query) {
        const parsed = r.spec.query.safeParse(Object.fromEntries(url.searchParams));
        if (!parsed.success) return errorResponse("bad_request", "invalid query", zodDetail(parsed.error));
        query = parsed.data;
      }
      const out = await r.handle({ req, url, body, query, server });
      return out instanceof Response ? out : json(out);
    } catch (e) {
      if (e instanceof DecnetError && e.code in ERROR_STATUS) {
        return errorResponse(e.code as ErrorCode, e.message, e.detail);
      }
      log.error(`${key} failed:`, e);
      return json({ error: { code: "internal", message: "internal error" } }, 500);
    }
  }
}

export interface ListenOptions {
  app: App;
  hostname: string;
  port: number;
  /** mTLS (lib/tls.ts serverTls), or server-only TLS for a joining updater's join routes (no client has a certificate yet). */
  tls: ServerTls | { cert: string; key: string; ciphers: string };
  /** This process's own listener holds the port already and is being replaced (tls-listener.ts): not a second daemon. */
  beside?: boolean;
  maxRequestBodySize?: number;
  /** Seconds a connection may sit idle; long handlers lift it per request. */
  idleTimeout?: number;
}

/**
 * Serves `o.app` on hostname:port over TLS. With SO_REUSEPORT, so the
 * updater's port guard (port-guard.ts) can hold the port for this uid; a
 * second daemon of this uid on the same port is refused here instead (the
 * kernel would let it share).
 */
export function listen(o: ListenOptions): Server<undefined> {
  const euid = typeof process.geteuid === "function" ? process.geteuid() : 0;
  if (!o.beside && listeners(o.hostname, o.port).some((l) => l.uid === euid)) {
    throw new DecnetError("failed", `${o.hostname}:${o.port} is already in use`, { hint: "stop the other daemon or pick another --host/--port" });
  }
  try {
    return Bun.serve({
      hostname: o.hostname,
      port: o.port,
      reusePort: true,
      tls: o.tls,
      maxRequestBodySize: o.maxRequestBodySize ?? 1024 * 1024,
      idleTimeout: o.idleTimeout ?? 30,
      // Never Bun's development error page: it carries paths and source.
      development: false,
      fetch: (req, server) => o.app(req, server),
    });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === "EADDRINUSE" ? "is already in use" : code === "EADDRNOTAVAIL" ? "is not an address of this machine" : `cannot be bound (${(e as Error).message})`;
    throw new DecnetError("failed", `${o.hostname}:${o.port} ${why}`, {
      hint: code === "EADDRINUSE" ? "stop the other daemon or pick another --host/--port" : undefined,
      cause: e,
    });
  }
}

/** A plain-HTTP server on a unix socket, mode 0600 from the moment it exists. */
export function listenUnix(path: string, app: App): Server<undefined> {
  try { unlinkSync(path); } catch {} // a stale socket from a killed daemon
  const old = process.umask(0o177);
  try {
    return Bun.serve({ unix: path, development: false, fetch: (req, server) => app(req, server) });
  } catch (e) {
    throw new DecnetError("failed", `cannot listen on ${path}: ${(e as Error).message}`, { cause: e });
  } finally {
    process.umask(old);
    try { chmodSync(path, 0o600); } catch {}
  }
}

/** Runs `stop` once on SIGTERM or SIGINT, then exits 0; the function returned hands the signals back (a joining updater's servers are replaced). */
export function onShutdown(stop: () => void | Promise<void>): () => void {
  let stopping = false;
  const handler = async () => {
    if (stopping) return;
    stopping = true;
    try {
      await stop();
    } finally {
      process.exit(0);
    }
  };
  process.on("SIGTERM", handler);
  process.on("SIGINT", handler);
  return () => {
    process.off("SIGTERM", handler);
    process.off("SIGINT", handler);
  };
}
