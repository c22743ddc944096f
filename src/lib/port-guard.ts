/**
 * Holding a decnet port so no other local user can take it while its
 * daemon restarts. Bun.serve cannot adopt a listening fd (its options take a
 * host and port, never an fd; checked on 1.4.5), so the fd cannot be handed
 * across a restart. Instead the updater keeps a TCP socket bound, never
 * listening, to each decnet port (its own and the agent's) with
 * SO_REUSEPORT. Linux lets another socket share that port only when it also
 * sets SO_REUSEPORT and has the same effective uid: the daemons do (they
 * bind with `reusePort`), any other user's bind fails with EADDRINUSE — in
 * the agent's stop/start window and across the updater's own execve, whose
 * image inherits these fds (DECNET_PORT_GUARD_FDS) until its new guards hold.
 * A bound socket that never listens receives no connections.
 */
import { ptr } from "bun:ffi";
import { isIPv4, isIPv6 } from "node:net";
import { errno, libc } from "./libc.ts";

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEPORT = 15;
const EADDRINUSE = 98;

function sockaddr(host: string, port: number): { family: number; addr: Uint8Array } | null {
  if (isIPv4(host)) {
    const a = new Uint8Array(16);
    const v = new DataView(a.buffer);
    v.setUint16(0, AF_INET, true);
    v.setUint16(2, port, false);
    a.set(host.split(".").map(Number), 4);
    return { family: AF_INET, addr: a };
  }
  if (isIPv6(host)) {
    const a = new Uint8Array(28);
    const v = new DataView(a.buffer);
    v.setUint16(0, AF_INET6, true);
    v.setUint16(2, port, false);
    a.set(ipv6Bytes(host), 8);
    return { family: AF_INET6, addr: a };
  }
  return null;
}

function ipv6Bytes(host: string): number[] {
  const [head, tail] = host.includes("::") ? host.split("::") : [host, null];
  const part = (s: string | null | undefined) => (s ? s.split(":").filter(Boolean) : []);
  const h = part(head);
  const t = part(tail);
  const groups = [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  return groups.flatMap((g) => [(parseInt(g, 16) >> 8) & 0xff, parseInt(g, 16) & 0xff]);
}

export type GuardResult = { ok: true; fd: number } | { ok: false; why: string; inUse: boolean };

/**
 * Binds a never-listening SO_REUSEPORT socket to host:port, close-on-exec
 * (reexec.ts hands it over on purpose; no other child inherits it).
 */
export function holdPort(host: string, port: number): GuardResult {
  const c = libc();
  const sa = sockaddr(host, port);
  if (!c) return { ok: false, why: "libc cannot be opened", inUse: false };
  if (!sa) return { ok: false, why: `${host} is not an IP address`, inUse: false };
  const fd = c.socket(sa.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return { ok: false, why: `socket() failed (errno ${errno()})`, inUse: false };
  const one = new Int32Array([1]);
  if (c.setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, ptr(one), 4) !== 0 || c.bind(fd, ptr(sa.addr), sa.addr.byteLength) !== 0) {
    const e = errno();
    c.close(fd);
    return { ok: false, why: e === EADDRINUSE ? "the port is held by a socket that does not share it" : `bind failed (errno ${e})`, inUse: e === EADDRINUSE };
  }
  return { ok: true, fd };
}

export function releasePort(fd: number): void {
  libc()?.close(fd);
}
