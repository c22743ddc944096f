/** One typed function per agent route the master uses. */
import { AgentHealth } from "../protocol/agent.ts";
import { timeouts } from "../lib/timeouts.ts";
import { call, type Endpoint } from "./http.ts";

export type AgentEndpoint = Omit<Endpoint, "role">;
const ep = (e: AgentEndpoint): Endpoint => ({ ...e, role: "agent" });

export const agentHealth = (e: AgentEndpoint) => call(ep(e), "/health", { schema: AgentHealth, timeoutMs: timeouts.request() });
