/**
 * decnet: one executable, several roles. Subcommands load lazily so a worker
 * daemon never evaluates master code.
 */
import { defineCommand } from "citty";
import { runCli } from "./cli/_action.ts";

export const commands = {
  version: () => import("./cli/version.ts").then((m) => m.default),
  agent: () => import("./cli/agent.ts").then((m) => m.default),
  updater: () => import("./cli/updater.ts").then((m) => m.default),
  swarm: () => import("./cli/swarm/index.ts").then((m) => m.default),
  release: () => import("./cli/release/index.ts").then((m) => m.default),
};

const main = defineCommand({
  meta: { name: "decnet", description: "Keep a fleet of workers on the code you choose" },
  subCommands: commands,
});

await runCli(main);
