/**
 * The local control socket client (agent.sock, updater.sock): GET /health over
 * plain HTTP on a 0600 unix socket (served by daemons/server.ts listenUnix).
 * No TLS: the updater's certificate is serverAuth-only; the socket's mode is the gate.
 */
export interface LocalHealth {
  status: string;
  role: string;
  version: string;
  release: string | null;
  pid: number;
}

/** One GET /health over a unix socket; throws on any failure. */
export async function localHealth(sock: string, timeoutMs: number): Promise<LocalHealth> {
  const res = await fetch("http://localhost/health", { unix: sock, signal: AbortSignal.timeout(timeoutMs) });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
  const body = (await res.json()) as LocalHealth;
  if (typeof body !== "object" || body === null || typeof body.pid !== "number") throw new Error("not a health answer");
  return body;
}
