/**
 * How many connections a certificate swap loses: three clients make fresh
 * mTLS connections in a loop while the server's listener is replaced N times,
 * either by a second `reusePort` listener then stop(false) of the first
 * ("reuse"), or stop then listen again ("restart").
 *
 *   bun bench/listener-swap.ts reuse|restart [N]
 *   # with the kernel handing a closing listener's queue to its sibling:
 *   unshare -n sh -c 'ip link set lo up; sysctl -qw net.ipv4.tcp_migrate_req=1; bun bench/listener-swap.ts reuse 200'
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { issue, loadOrCreateCa } from "../src/core/ca.ts";
import { homePaths } from "../src/lib/paths.ts";

const mode = process.argv[2] === "restart" ? "restart" : "reuse";
const swaps = Number(process.argv[3] ?? 100);
const dir = mkdtempSync(join(tmpdir(), "decnet-swap-"));
const ca = await loadOrCreateCa(homePaths(dir));
const [a, b, client] = await Promise.all([
  issue(ca, { role: "agent", cn: "edge", sans: ["127.0.0.1"] }),
  issue(ca, { role: "agent", cn: "edge", sans: ["127.0.0.1"] }),
  issue(ca, { role: "master", cn: "decnet-master" }),
]);
const serve = (port: number, i: number) =>
  Bun.serve({
    hostname: "127.0.0.1",
    port,
    reusePort: mode === "reuse",
    tls: { cert: (i % 2 ? a : b).certPem, key: (i % 2 ? a : b).keyPem, ca: ca.pem, requestCert: true, rejectUnauthorized: true },
    fetch: () => new Response("x"),
  });
let current = serve(0, 0);
const port = current.port!;
let ok = 0;
const errors: Record<string, number> = {};
let running = true;
const clientTls = { cert: client.certPem, key: client.keyPem, ca: ca.pem, checkServerIdentity: () => undefined };
const loop = async () => {
  while (running) {
    try {
      await (await fetch(`https://127.0.0.1:${port}/`, { keepalive: false, tls: clientTls } as RequestInit)).text();
      ok++;
    } catch (e) {
      const code = String((e as { code?: string }).code);
      errors[code] = (errors[code] ?? 0) + 1;
    }
  }
};
const clients = [loop(), loop(), loop()];
let slowest = 0;
for (let i = 1; i <= swaps; i++) {
  await Bun.sleep(20);
  const t0 = performance.now();
  if (mode === "reuse") {
    const next = serve(port, i);
    current.stop(false);
    current = next;
  } else {
    current.stop(false);
    current = serve(port, i);
  }
  slowest = Math.max(slowest, performance.now() - t0);
}
running = false;
await Promise.all(clients);
current.stop(true);
rmSync(dir, { recursive: true, force: true });
console.log(JSON.stringify({ mode, swaps, ok, errors, slowestSwapMs: Number(slowest.toFixed(2)) }));
