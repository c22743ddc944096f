/** `decnet swarm join HOST [--wait]`: complete an open join (`swarm enroll --join --no-wait`) against the waiting worker. */
import { defineCommand } from "citty";
import { action } from "../_action.ts";
import { joined } from "./_join.ts";
import { err } from "../../lib/stdio.ts";

export default defineCommand({
  meta: { name: "join", description: "Complete the open join of a host whose worker runs `decnet updater --join TOKEN`" },
  args: {
    host: { type: "positional", description: "Host name given to `swarm enroll --join`", required: true },
    wait: { type: "boolean", description: "Keep trying until the token expires while the worker is not there yet" },
  },
  run: action(async ({ args }) => {
    const { completeHostJoin } = await import("../../core/swarm/join.ts");
    joined(await completeHostJoin(args.host, { wait: Boolean(args.wait), onWaiting: (why) => err(`waiting for ${args.host}'s worker (${why})\n`) }));
  }),
});
