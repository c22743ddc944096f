/** `decnet agent`: run the agent daemon (or detach it with --daemon). */
import { defineCommand } from "citty";
import { action } from "./_action.ts";
import { agentDirArg, daemonArg, installDirArg } from "./_args.ts";

export default defineCommand({
  meta: { name: "agent", description: "Run the worker agent (port 8765)" },
  args: {
    host: { type: "string", description: "Address to listen on (default 0.0.0.0)" },
    port: { type: "string", description: "Port (default 8765)" },
    ...agentDirArg,
    ...installDirArg,
    ...daemonArg,
  },
  run: action(async ({ args }) => {
    const { startAgent } = await import("../daemons/launch.ts");
    await startAgent(args, Boolean(args.daemon));
  }),
});
