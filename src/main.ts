/**
 * decnet: one executable, several roles. Subcommands load lazily so a worker
 * daemon never evaluates master code.
 */
import { defineCommand } from "citty";
import { runCli } from "./cli/_action.ts";
import { commands } from "./cli/index.ts";

const main = defineCommand({
  meta: { name: "decnet", description: "Keep a fleet of workers on the code you choose" },
  subCommands: commands,
});

await runCli(main);
