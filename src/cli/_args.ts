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
export const trustDirArg = { dir: { type: "string", description: "Trust dir (default ~/.decnet/trust)" } } as const satisfies ArgsDef;
export const rootKeyArg = {
  "root-key": { type: "string", description: "Root key file, when it is not in the trust dir (keep it offline)" },
} as const satisfies ArgsDef;
export const daysArg = { days: { type: "string", description: "Days the signing key stays valid (default 365)" } } as const satisfies ArgsDef;
/** Signing while packing or building: --sign, with the key and trust dir it needs. */
export const signArgs = {
  sign: { type: "boolean", description: "Sign the release (signature.json) with the signing key" },
  key: { type: "string", description: "Signing key file (default ~/.decnet/trust/signing.key)" },
  "trust-dir": { type: "string", description: "Trust dir whose trust.json certifies the key (default ~/.decnet/trust)" },
} as const satisfies ArgsDef;
