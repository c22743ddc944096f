/** Argument definitions shared by several commands, typed once. */
import type { ArgsDef } from "citty";

export const jsonArg = { json: { type: "boolean", description: "Print JSON" } } as const satisfies ArgsDef;
export const daemonArg = { daemon: { type: "boolean", description: "Detach; return once it answers /health" } } as const satisfies ArgsDef;
export const installDirArg = {
  "install-dir": { type: "string", description: "Install dir (default /opt/decnet)" },
} as const satisfies ArgsDef;
export const agentDirArg = {
  "agent-dir": { type: "string", description: "Agent bundle dir (default ~/.decnet/agent)" },
} as const satisfies ArgsDef;
export const hostNameArg = { host: { type: "string", description: "Enrolled host name", required: true } } as const satisfies ArgsDef;
