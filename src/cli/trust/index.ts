/** `decnet trust`: the fleet's root of trust for signed releases (DESIGN §11). */
import { defineCommand } from "citty";

export const trustCommands = {
  init: () => import("./init.ts").then((m) => m.default),
  show: () => import("./show.ts").then((m) => m.default),
  "add-signer": () => import("./add-signer.ts").then((m) => m.default),
  "revoke-signer": () => import("./revoke-signer.ts").then((m) => m.default),
  floor: () => import("./floor.ts").then((m) => m.default),
  "rotate-root": () => import("./rotate-root.ts").then((m) => m.default),
};

export default defineCommand({
  meta: { name: "trust", description: "Root and signing keys, the trust document, the version floor" },
  subCommands: trustCommands,
});
