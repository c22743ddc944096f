/** One typed function per agent route the master uses. */
import { AgentHealth, AgentStatus } from "../protocol/agent.ts";
import { timeouts } from "../lib/timeouts.ts";
import { call, type Endpoint } from "./http.ts";

export type AgentEndpoint = Omit<Endpoint, "role">;
const ep = (e: AgentEndpoint): Endpoint => ({ ...e, role: "agent" });

export const agentHealth = (e: AgentEndpoint) => call(ep(e), "/health", { schema: AgentHealth, timeoutMs: timeouts.request() });
export const agentStatus = (e: AgentEndpoint) => call(ep(e), "/status", { schema: AgentStatus, timeoutMs: timeouts.request() });
