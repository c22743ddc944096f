/** `decnet updater`: run the updater daemon (or detach it with --daemon). */
import { defineCommand } from "citty";
import { action } from "./_action.ts";
import { agentDirArg, daemonArg, installDirArg } from "./_args.ts";

export default defineCommand({
  meta: { name: "updater", description: "Run the worker updater (port 8766)" },
  args: {
    host: { type: "string", description: "Address to listen on (default 0.0.0.0); an agent it spawns listens here too (under systemd both read DECNET_HOST from .env.local)" },
    port: { type: "string", description: "Port (default 8766)" },
    "updater-dir": { type: "string", description: "Updater bundle dir (default ~/.decnet/updater)" },
    ...installDirArg,
    ...agentDirArg,
    "agent-port": { type: "string", description: "Port the agent listens on (default 8765)" },
    "agent-supervisor": { type: "enum", options: ["spawn", "systemd"], description: "How to restart the agent (default spawn)" },
    ...daemonArg,
    preflight: { type: "boolean", description: "Load and check everything, bind nothing, exit" },
    "watch-self-update": { type: "boolean", description: "(internal) watch a self-update until the new updater confirms itself" },
  },
  run: action(async ({ args }) => {
    const { startUpdater } = await import("../daemons/launch.ts");
    await startUpdater(args, Boolean(args.daemon));
  }),
});
