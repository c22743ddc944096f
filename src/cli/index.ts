/** The command table: top-level subcommands, each loaded only when used. */
export const commands = {
  version: () => import("./version.ts").then((m) => m.default),
  agent: () => import("./agent.ts").then((m) => m.default),
  updater: () => import("./updater.ts").then((m) => m.default),
  swarm: () => import("./swarm/index.ts").then((m) => m.default),
  release: () => import("./release/index.ts").then((m) => m.default),
  trust: () => import("./trust/index.ts").then((m) => m.default),
};
