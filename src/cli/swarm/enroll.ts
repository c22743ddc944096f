/**
 * `decnet swarm enroll`: issue a host's certificates and record it; `--updater-only` adds the updater bundle;
 * `--join` prints a join token instead and waits for the worker to join.
 */
import { defineCommand } from "citty";
import { action, listArg } from "../_action.ts";
import { out } from "../_render.ts";
import { joined, waiting } from "./_join.ts";

export default defineCommand({
  meta: { name: "enroll", description: "Issue a host's certificate bundle(s) and record it, or (--join) a token the worker joins with" },
  args: {
    host: { type: "string", description: "Host name (a DNS label)", required: true },
    address: { type: "string", description: "Address the master reaches it at (IP or DNS name); required unless --updater-only" },
    sans: { type: "string", description: "Extra SANs, comma-separated" },
    updater: { type: "boolean", description: "Also issue the updater bundle (DIR-updater)" },
    "updater-only": { type: "boolean", description: "Only the updater bundle, for a host enrolled without --updater (SANs from the registry)" },
    "out-dir": { type: "string", description: "Where to write the bundle (default ~/.decnet/bundles/<host>)" },
    join: { type: "boolean", description: "Print a join token (`decnet updater --join TOKEN` on the worker, which makes its own keys); no bundles" },
    wait: { type: "boolean", default: true, description: "With --join: wait for the worker and complete the join (--no-wait: later, with `swarm join HOST`)" },
    ttl: { type: "string", description: "With --join: how long the token lasts (default 30m, at most 24h)" },
  },
  run: action(async ({ args }) => {
    const o = { host: args.host, address: args.address, sans: listArg(args.sans), updater: args.updater, updaterOnly: args["updater-only"], outDir: args["out-dir"] };
    if (args.join || args.ttl !== undefined || args.wait === false) {
      const { completeHostJoin, openHostJoin } = await import("../../core/swarm/join.ts");
      const j = await openHostJoin({ ...o, join: Boolean(args.join), ttl: args.ttl });
      out(j.token);
      if (args.wait === false) return out(`then, once the worker waits: decnet swarm join ${j.host}   (the token expires at ${j.expiresAt})`);
      waiting(j);
      return joined(await completeHostJoin(j.host, { wait: true }));
    }
    const { enroll } = await import("../../core/swarm/enroll.ts");
    const r = await enroll(o);
    out(`${r.agentBundle ? "enrolled" : "issued the updater bundle for"} ${r.host} (${r.sans.join(", ")})`);
    if (r.agentBundle) out(`  agent bundle:   ${r.agentBundle}`);
    if (r.updaterBundle) out(`  updater bundle: ${r.updaterBundle}`);
  }),
});
