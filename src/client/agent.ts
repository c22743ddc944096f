/** One typed function per agent route the master uses, over the protocol's `agentApi`. */
import { agentApi } from "../protocol/agent.ts";
import { timeouts } from "../lib/timeouts.ts";
import { call, type Endpoint } from "./http.ts";

export type AgentEndpoint = Omit<Endpoint, "role">;
const ep = (e: AgentEndpoint): Endpoint => ({ ...e, role: "agent" });

export const agentHealth = (e: AgentEndpoint, signal?: AbortSignal) => call(ep(e), agentApi.health, { timeoutMs: timeouts.request(), signal });
