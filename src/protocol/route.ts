/**
 * A route of the wire contract as data: method, path, query, body and
 * response schemas. The daemons' route tables and the master's client calls
 * both derive from these, so a path or a query is written once.
 */
import type { z } from "zod";

export interface RouteSpec {
  method: "GET" | "POST";
  path: `/${string}`;
  /** The query string, parsed from strings (z.coerce where a number is meant). */
  query?: z.ZodType;
  /** A JSON body schema, or "stream" for an upload the handler reads itself. */
  body?: z.ZodType | "stream";
  response: z.ZodType;
  /**
   * The answer is text/plain (a log tail, metrics), not JSON: `response` is
   * then z.string(), and the client reads it as text (client/http.ts openText).
   */
  text?: true;
  /** The most bytes an answer may have; a reader stops there (default ANSWER_LIMIT). */
  answerLimit?: number;
}

/** Answers are small JSON; a block index is the exception and says so. */
export const ANSWER_LIMIT = 1024 * 1024;

export function defineRoute<const S extends RouteSpec>(s: S): S {
  return s;
}

/** "METHOD /path": the key of a route in a daemon's table. */
export const routeKey = (s: Pick<RouteSpec, "method" | "path">) => `${s.method} ${s.path}`;

export type QueryOf<S extends RouteSpec> = S["query"] extends z.ZodType ? z.output<S["query"]> : undefined;
export type QueryInput<S extends RouteSpec> = S["query"] extends z.ZodType ? z.input<S["query"]> : undefined;
export type BodyOf<S extends RouteSpec> = S["body"] extends z.ZodType ? z.output<S["body"]> : undefined;
export type ResponseOf<S extends RouteSpec> = z.output<S["response"]>;

/** The path with its query string, as the client sends it. */
export function pathWithQuery(s: RouteSpec, query?: Record<string, string | number | boolean | undefined>): string {
  if (!query) return s.path;
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) q.set(k, String(v));
  const text = q.toString();
  return text ? `${s.path}?${text}` : s.path;
}
