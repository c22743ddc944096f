/** `decnet swarm`: the master's fleet commands. */
import { defineCommand } from "citty";

export const swarmCommands = {
  enroll: () => import("./enroll.ts").then((m) => m.default),
  join: () => import("./join.ts").then((m) => m.default),
  list: () => import("./list.ts").then((m) => m.default),
  decommission: () => import("./decommission.ts").then((m) => m.default),
  update: () => import("./update.ts").then((m) => m.default),
  rollout: () => import("./rollout.ts").then((m) => m.default),
  rollback: () => import("./rollback.ts").then((m) => m.default),
  releases: () => import("./releases.ts").then((m) => m.default),
  status: () => import("./status.ts").then((m) => m.default),
  logs: () => import("./logs.ts").then((m) => m.default),
  operator: () => import("./operator.ts").then((m) => m.default),
  "rotate-master": () => import("./rotate-master.ts").then((m) => m.default),
  renew: () => import("./renew.ts").then((m) => m.default),
  crl: () => import("./crl.ts").then((m) => m.default),
  trust: () => import("./trust.ts").then((m) => m.default),
  history: () => import("./history.ts").then((m) => m.default),
  registry: () => import("./registry.ts").then((m) => m.default),
};

export default defineCommand({
  meta: { name: "swarm", description: "Enroll, list and update the fleet" },
  subCommands: swarmCommands,
});
