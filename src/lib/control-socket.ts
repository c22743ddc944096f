/**
 * The local control socket client (agent.sock, updater.sock): GET /health, and
 * the agent's POST /tls/reload, over plain HTTP on a 0600 unix socket (served
 * by daemons/server.ts listenUnix).
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

export type AgentReload = { outcome: "switched"; serial: string; crl_until: string | null } | { outcome: "not-running" } | { outcome: "failed"; why: string };

/**
 * Has the agent behind `sock` serve its bundle dir as it is now (agentLocalApi
 * tlsReload). Nobody on the socket: not running, it reads the bundle when it
 * starts. An agent too old to know the route uses them from its next start.
 */
export async function reloadAgentTls(sock: string, timeoutMs: number): Promise<AgentReload> {
  let res: Response;
  try {
    res = await fetch("http://localhost/tls/reload", { method: "POST", unix: sock, signal: AbortSignal.timeout(timeoutMs) });
  } catch {
    return { outcome: "not-running" };
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {}
  const b = body as { serial?: unknown; crl_until?: unknown; error?: { message?: unknown } } | undefined;
  if (res.status === 200 && typeof b?.serial === "string") return { outcome: "switched", serial: b.serial, crl_until: typeof b.crl_until === "string" ? b.crl_until : null };
  if (res.status === 404) return { outcome: "failed", why: "its release cannot switch certificates in place; it uses them from its next start" };
  return { outcome: "failed", why: typeof b?.error?.message === "string" ? b.error.message.slice(0, 300) : `HTTP ${res.status}` };
}
