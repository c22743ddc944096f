/** `decnet release`: make release artifacts. */
import { defineCommand } from "citty";

export const releaseCommands = {
  build: () => import("./build.ts").then((m) => m.default),
  pack: () => import("./pack.ts").then((m) => m.default),
  sign: () => import("./sign.ts").then((m) => m.default),
};

export default defineCommand({
  meta: { name: "release", description: "Build, pack or sign a release artifact" },
  subCommands: releaseCommands,
});
