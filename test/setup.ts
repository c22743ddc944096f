/** Preloaded by bunfig.toml: e2e tests start real daemons and push real releases. */
import { setDefaultTimeout } from "bun:test";

setDefaultTimeout(90_000);
