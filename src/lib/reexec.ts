/**
 * Replace this process image in place (same pid, so systemd keeps tracking
 * it) with execve(2) through bun:ffi. Every fd above stderr but `keep` is
 * marked close-on-exec first, so no listening socket leaks into the new
 * image; `keep` (the port guards) are handed over on purpose.
 */
import { readdirSync } from "node:fs";
import { DecnetError } from "./errors.ts";
import { libc } from "./libc.ts";

const F_SETFD = 2;
const FD_CLOEXEC = 1;

export async function reexec(path: string, argv: string[], env: Record<string, string>, keep: number[] = []): Promise<never> {
  const { ptr } = await import("bun:ffi");
  const c = libc();
  if (!c) throw new DecnetError("failed", "cannot open libc.so.6 to re-execute");
  // The C strings must outlive the call: held here until execve replaces us.
  const held: Buffer[] = [];
  const cstr = (s: string) => {
    const b = Buffer.from(`${s}\0`);
    held.push(b);
    return b;
  };
  const array = (xs: string[]) => {
    const a = new BigUint64Array(xs.length + 1);
    xs.forEach((s, i) => { a[i] = BigInt(ptr(cstr(s))); });
    return a;
  };
  for (const fd of readdirSync("/proc/self/fd").map(Number)) {
    if (fd > 2) c.fcntl(fd, F_SETFD, keep.includes(fd) ? 0 : FD_CLOEXEC);
  }
  const file = cstr(path);
  const a = array(argv);
  const e = array(Object.entries(env).map(([k, v]) => `${k}=${v}`));
  c.execve(ptr(file), ptr(a), ptr(e));
  // Only reached when execve failed.
  throw new DecnetError("failed", `execve ${path} failed`);
}
