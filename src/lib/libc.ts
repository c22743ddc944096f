/**
 * The few libc calls Node's fs lacks, through bun:ffi, opened on first use:
 * execve (reexec.ts), copy_file_range (copy a byte range inside the kernel,
 * a reflink where the filesystem has them), sync_file_range (start
 * writeback now), renameat2 (swap two paths atomically), a bound socket
 * that never listens (port-guard.ts), and pidfds (signal.ts). Where libc
 * cannot be opened, `libc()` is null and callers take their portable path.
 */
import { dlopen, FFIType, read } from "bun:ffi";

const symbols = {
  execve: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  fcntl: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  copy_file_range: { args: [FFIType.i32, FFIType.ptr, FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.u32], returns: FFIType.i64_fast },
  sync_file_range: { args: [FFIType.i32, FFIType.i64, FFIType.i64, FFIType.u32], returns: FFIType.i32 },
  renameat2: { args: [FFIType.i32, FFIType.ptr, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
  // Variadic in C; called with every argument as a long, as the ABI passes them on x86-64 and arm64.
  syscall: { args: [FFIType.i64, FFIType.i64, FFIType.i64, FFIType.i64, FFIType.i64], returns: FFIType.i64 },
  __errno_location: { args: [], returns: FFIType.ptr },
} as const;

type Libc = ReturnType<typeof dlopen<typeof symbols>>["symbols"];
let opened: Libc | null | undefined;

export function libc(): Libc | null {
  if (opened === undefined) {
    try {
      opened = dlopen("libc.so.6", symbols).symbols;
    } catch {
      opened = null;
    }
  }
  return opened;
}

const SYNC_FILE_RANGE_WRITE = 2;

/**
 * Asks the kernel to start writing [offset, offset+length) of `fd` to disk
 * and returns at once. A hint, not a barrier: durability still comes from
 * fsync; this only lets the disk work while the rest of a file is written.
 */
export function startWriteback(fd: number, offset: number, length: number): void {
  libc()?.sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE);
}

/**
 * Copies [offset, offset+length) of `src` to the same place in `dst` inside
 * the kernel. Returns the bytes copied, which is less than `length` when the
 * call is missing or fails part way (EXDEV, ENOSYS, EINVAL on some
 * filesystems): the caller copies the rest itself.
 */
export function copyRange(src: number, dst: number, offset: number, length: number): number {
  const c = libc();
  if (!c) return 0;
  const offIn = new BigInt64Array([BigInt(offset)]);
  const offOut = new BigInt64Array([BigInt(offset)]);
  let done = 0;
  while (done < length) {
    const n = Number(c.copy_file_range(src, offIn, dst, offOut, length - done, 0));
    if (n <= 0) break;
    done += n;
  }
  return done;
}

const AT_FDCWD = -100;
const RENAME_EXCHANGE = 2;

/** Swaps two existing paths in one atomic step; false where the call or the filesystem cannot. */
export function exchange(a: string, b: string): boolean {
  const c = libc();
  if (!c) return false;
  return c.renameat2(AT_FDCWD, Buffer.from(`${a}\0`), AT_FDCWD, Buffer.from(`${b}\0`), RENAME_EXCHANGE) === 0;
}

/** errno after a failed call (read right after it, before anything else runs). */
export function errno(): number {
  const c = libc();
  if (!c) return 0;
  return read.i32(c.__errno_location()!, 0);
}
