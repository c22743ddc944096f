/**
 * Replacing a bundle's key and certificate as a pair, crash-safe: both are
 * staged as `.next`, then renamed key first, certificate second. A daemon
 * calls recoverBundle before reading its bundle, so a kill -9 at any point
 * leaves the old pair or the new one, never a key with another's certificate.
 */
import { existsSync, renameSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import { fsyncPath, writeFileAtomic } from "./atomic.ts";
import type { BundlePaths } from "./paths.ts";

const next = (p: string) => `${p}.next`;

/** Writes the new pair beside the old one; nothing a daemon reads has changed yet. */
export function stageBundle(b: BundlePaths, pair: { crt: string; key: string }): void {
  writeFileAtomic(next(b.key), pair.key, 0o600);
  writeFileAtomic(next(b.crt), pair.crt, 0o644);
}

/** Switches to the staged pair: key, then certificate (recoverBundle relies on this order). */
export function commitBundle(b: BundlePaths): void {
  renameSync(next(b.key), b.key);
  renameSync(next(b.crt), b.crt);
  fsyncPath(dirname(b.crt));
}

export type Recovery = "clean" | "discarded" | "rolled-forward";

/**
 * Finishes or undoes a switch a crash interrupted. Both `.next` files: the
 * commit had not begun, so the old pair stays. Only `crt.next`: the key was
 * already switched, so the certificate follows.
 */
export function recoverBundle(b: BundlePaths): Recovery {
  const crt = existsSync(next(b.crt));
  const key = existsSync(next(b.key));
  if (crt && !key) {
    renameSync(next(b.crt), b.crt);
    fsyncPath(dirname(b.crt));
    return "rolled-forward";
  }
  if (crt || key) {
    rmSync(next(b.crt), { force: true });
    rmSync(next(b.key), { force: true });
    return "discarded";
  }
  return "clean";
}
