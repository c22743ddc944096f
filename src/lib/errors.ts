/**
 * DecnetError (a failure decnet understands, carrying its advice) and
 * RemoteError (an error body or transport failure from a worker).
 */
import type { ErrorCode } from "../protocol/common.ts";

export interface DecnetErrorOptions {
  /** What the operator should do about it, printed after the message. */
  hint?: string;
  /** Structured detail, sent in the HTTP error body. */
  detail?: unknown;
  /** 1 for a failed operation, 2 for bad usage. */
  exitCode?: 1 | 2;
  cause?: unknown;
}

export class DecnetError extends Error {
  override readonly name = "DecnetError";
  readonly hint?: string;
  readonly detail?: unknown;
  readonly exitCode: 1 | 2;
  constructor(
    readonly code: ErrorCode | "usage" | "failed",
    message: string,
    opts: DecnetErrorOptions = {},
  ) {
    super(message, { cause: opts.cause });
    this.hint = opts.hint;
    this.detail = opts.detail;
    this.exitCode = opts.exitCode ?? (code === "usage" ? 2 : 1);
  }
}

/** Bad usage: exit code 2. */
export function usageError(message: string, hint?: string): DecnetError {
  return new DecnetError("usage", message, { hint, exitCode: 2 });
}

/**
 * A worker said no, or could not be reached. `code` is the worker's error
 * code, or one of the transport codes: unreachable, timeout, handshake,
 * identity, bad_response.
 */
export class RemoteError extends Error {
  override readonly name = "RemoteError";
  constructor(
    readonly host: string,
    readonly code: string,
    message: string,
    readonly status = 0,
    readonly detail?: unknown,
    readonly hint?: string,
  ) {
    super(message);
  }
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
