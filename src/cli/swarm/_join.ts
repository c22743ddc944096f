/** What `swarm enroll --join` and `swarm join` say while waiting for a worker and once it has joined. */
import type { Joined, OpenedJoin } from "../../core/swarm/join.ts";
import { err } from "../../lib/stdio.ts";
import { out } from "../_render.ts";

export function waiting(j: Pick<OpenedJoin, "host" | "address" | "port" | "expiresAt">): void {
  err(`on the worker: decnet updater --join TOKEN [its usual flags]  (or install.sh … --join TOKEN)\n`);
  err(`waiting for ${j.host} to join at ${j.address}:${j.port} until ${j.expiresAt}; Ctrl-C stops waiting, \`decnet swarm join ${j.host}\` completes it later\n`);
}

export function joined(r: Joined): void {
  out(`joined ${r.host} (${r.sans.join(", ")}): agent certificate ${r.serials.agent}, updater certificate ${r.serials.updater}, valid until ${r.notAfter}`);
  if (r.recovered) out("  (the worker had installed its certificates before; its confirmation had not reached this master)");
}
