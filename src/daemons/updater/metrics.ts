/**
 * GET /metrics: the updater's counters (counters.ts) and what is true now —
 * releases, agent health and uptime, certificate expiry, free disk, the
 * operation in flight — in the Prometheus text format, names as its
 * conventions want them (`decnet_` prefix, `_total`, `_seconds`, `_bytes`).
 */
import { CONTENT_TYPE, type Family, histogram, render } from "../../lib/prom-text.ts";
import { PROTOCOL_VERSION, VERSION_HEADER } from "../../protocol/common.ts";
import { Slot } from "../../protocol/updater.ts";
import type { BuildInfo } from "../../lib/build-info.ts";
import { type Counters, DURATION_BUCKETS, OUTCOMES, TRIGGERS } from "./counters.ts";
import type { ReleaseSet } from "./release-set.ts";
import type { Vitals } from "./vitals.ts";

/** Operations that take the lock (routes.ts, main.ts): each has a series, 0 or 1. */
const OPERATIONS = ["update", "update-self", "rollback", "trust", "startup"] as const;

export interface MetricsInput {
  counters: Counters;
  vitals: Vitals;
  /** The agent's release set, and the updater's own build. */
  agentSet: ReleaseSet;
  info: BuildInfo;
  busy: string | null;
  agent: { healthy: boolean; uptime_s: number | null };
  logStreams: number;
  startedAt: number;
  now?: number;
}

export function metricsFamilies(m: MetricsInput): Family[] {
  const now = m.now ?? Date.now();
  const c = m.counters.get();
  const current = m.agentSet.current();
  const agentVersion = current ? (m.agentSet.manifest(current)?.version ?? "") : null;
  const certs = m.vitals.certificates();
  const disk = m.vitals.disk();
  const busyOp = m.busy?.split(" ")[0] ?? null;
  const ops = busyOp && !(OPERATIONS as readonly string[]).includes(busyOp) ? [...OPERATIONS, busyOp] : OPERATIONS;
  return [
    {
      name: "decnet_updates_total",
      help: "Releases pushed to this updater (/update: slot agent, /update-self: slot updater), by outcome.",
      type: "counter",
      samples: Slot.options.flatMap((slot) => OUTCOMES.map((outcome) => ({ labels: { slot, outcome }, value: c.updates[`${slot} ${outcome}`] ?? 0 }))),
    },
    {
      name: "decnet_rollbacks_total",
      help: "Switches back to the previous release: after a failed probe (probe) or asked for with /rollback (operator).",
      type: "counter",
      samples: TRIGGERS.map((trigger) => ({ labels: { trigger }, value: c.rollbacks[trigger] ?? 0 })),
    },
    {
      name: "decnet_update_duration_seconds",
      help: "Time from an upload's first byte to the answer, per slot.",
      type: "histogram",
      samples: Slot.options.flatMap((slot) => {
        const h = c.durations[slot];
        return histogram(DURATION_BUCKETS, h?.counts ?? [], h?.sum ?? 0, h?.count ?? 0, { slot });
      }),
    },
    { name: "decnet_update_received_bytes_total", help: "Upload bytes received by /update and /update-self.", type: "counter", samples: [{ value: c.bytes_received }] },
    {
      name: "decnet_release_info",
      help: "The release each slot runs (agent: current; updater: this process), as labels.",
      type: "gauge",
      samples: [
        ...(current ? [{ labels: { slot: "agent", release: current, version: agentVersion ?? "" }, value: 1 }] : []),
        ...(m.info.release ? [{ labels: { slot: "updater", release: m.info.release, version: m.info.version }, value: 1 }] : []),
      ],
    },
    { name: "decnet_agent_healthy", help: "1 when the agent answers on agent.sock with current's release.", type: "gauge", samples: [{ value: m.agent.healthy ? 1 : 0 }] },
    { name: "decnet_agent_restarts_total", help: "Agent restarts this updater made (updates, rollbacks, start-up).", type: "counter", samples: [{ value: c.agent_restarts }] },
    { name: "decnet_agent_uptime_seconds", help: "How long the agent process has run.", type: "gauge", samples: m.agent.uptime_s === null ? [] : [{ value: m.agent.uptime_s }] },
    {
      name: "decnet_certificate_expiry_seconds",
      help: "Seconds until the certificate expires (negative once it has).",
      type: "gauge",
      samples: (["updater", "agent"] as const).flatMap((certificate) => {
        const t = certs[certificate];
        return t ? [{ labels: { certificate }, value: Math.round((Date.parse(t) - now) / 1000) }] : [];
      }),
    },
    { name: "decnet_install_dir_free_bytes", help: "Bytes free to the updater on the install dir's file system.", type: "gauge", samples: disk ? [{ value: disk.free_bytes }] : [] },
    { name: "decnet_install_dir_size_bytes", help: "Size of the install dir's file system.", type: "gauge", samples: disk ? [{ value: disk.size_bytes }] : [] },
    {
      name: "decnet_operation_in_flight",
      help: "1 for the operation holding the updater's lock (another one gets 423).",
      type: "gauge",
      samples: ops.map((operation) => ({ labels: { operation }, value: operation === busyOp ? 1 : 0 })),
    },
    { name: "decnet_log_streams", help: "GET /logs?follow=1 streams open.", type: "gauge", samples: [{ value: m.logStreams }] },
    { name: "decnet_updater_start_time_seconds", help: "When this updater process started, in seconds since the epoch.", type: "gauge", samples: [{ value: Math.floor(m.startedAt / 1000) }] },
  ];
}

export function metricsResponse(m: MetricsInput): Response {
  return new Response(render(metricsFamilies(m)), { headers: { "content-type": CONTENT_TYPE, [VERSION_HEADER]: String(PROTOCOL_VERSION) } });
}
