/**
 * The only Bun.serve call. A daemon is a route table turned into a
 * fetch(Request) function: bodies and queries are zod-parsed here, a
 * DecnetError becomes the error body with its status, anything else is logged
 * and answered as a bare 500.
 */
import type { Server } from "bun";
import { chmodSync, unlinkSync } from "node:fs";
import type { z } from "zod";
import { ERROR_STATUS, type ErrorBody, type ErrorCode, PROTOCOL_VERSION, VERSION_HEADER } from "../protocol/common.ts";
import { DecnetError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";

export interface Ctx<B = unknown, Q = unknown> {
  req: Request;
  url: URL;
  body: B;
  query: Q;
  server?: Server<undefined>;
}

export interface Route<B = unknown, Q = unknown> {
  /** JSON body schema; a stream route (e.g. /update) reads ctx.req itself. */
  body?: z.ZodType<B>;
  query?: z.ZodType<Q>;
  handle(ctx: Ctx<B, Q>): Promise<Response | object> | Response | object;
}

/** Keys are "METHOD /path", kept sorted (a unit test checks). */
export type Routes = Record<string, Route<any, any>>;

export function route<B = undefined, Q = undefined>(r: Route<B, Q>): Route<B, Q> {
  return r;
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

export function createApp(routes: Routes, log: Logger): App {
  return async (req, server) => {
    const url = new URL(req.url);
    const key = `${req.method} ${url.pathname}`;
    const r = routes[key];
    try {
      if (!r) {
        const known = Object.keys(routes).some((k) => k.endsWith(` ${url.pathname}`));
        return known
          ? errorResponse("method_not_allowed", `${req.method} is not allowed on ${url.pathname}`)
          : errorResponse("not_found", `no route ${url.pathname}`);
      }
      let body: unknown;
      if (r.body) {
        let raw: unknown;
        try {
          raw = await req.json();
        } catch {
          return errorResponse("bad_request", "request body is not JSON");
        }
        const parsed = r.body.safeParse(raw);
        if (!parsed.success) return errorResponse("bad_request", "invalid request body", zodDetail(parsed.error));
        body = parsed.data;
      }
      let query: unknown;
      if (r.query) {
        const parsed = r.query.safeParse(Object.fromEntries(url.searchParams));
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
  };
}

export interface ListenOptions {
  app: App;
  hostname: string;
  port: number;
  tls: { cert: string; key: string; ca: string; requestCert: true; rejectUnauthorized: true };
  maxRequestBodySize?: number;
  /** Seconds a connection may sit idle; long handlers lift it per request. */
  idleTimeout?: number;
}

export function listen(o: ListenOptions): Server<undefined> {
  try {
    return Bun.serve({
      hostname: o.hostname,
      port: o.port,
      tls: o.tls,
      maxRequestBodySize: o.maxRequestBodySize ?? 1024 * 1024,
      idleTimeout: o.idleTimeout ?? 30,
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
    return Bun.serve({ unix: path, fetch: (req, server) => app(req, server) });
  } catch (e) {
    throw new DecnetError("failed", `cannot listen on ${path}: ${(e as Error).message}`, { cause: e });
  } finally {
    process.umask(old);
    try { chmodSync(path, 0o600); } catch {}
  }
}

/** Runs `stop` once on SIGTERM or SIGINT, then exits 0. */
export function onShutdown(stop: () => void | Promise<void>): void {
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
}
