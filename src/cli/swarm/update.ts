/** `decnet swarm update`: push a release to hosts as a rollout and print one row per host. */
import { defineCommand } from "citty";
import { action, listArg, repeatedArg } from "../_action.ts";
import { out, printJson, short } from "../_render.ts";
import { err } from "../../lib/stdio.ts";
import { rolloutOutputArgs, rolloutSession } from "./_rollout.ts";

const str = (v: unknown) => (v === undefined ? undefined : String(v));

export default defineCommand({
  meta: { name: "update", description: "Push a release to hosts (agent first), as a rollout" },
  args: {
    host: { type: "string", description: "Host name, or a comma-separated list (repeatable)" },
    all: { type: "boolean", description: "Every host not decommissioned" },
    artifact: { type: "string", description: "A release .tar.gz (or an executable to pack); repeat it, one per target, for a mixed fleet" },
    self: { type: "boolean", description: "Push the running decnet executable" },
    full: { type: "boolean", description: "Send the whole release, not a delta against what the host has" },
    "include-self": { type: "boolean", description: "Then update each host's updater (only where the agent updated)" },
    "allow-downgrade": { type: "boolean", description: "Let a signed release older than what a host runs in (never below its floor)" },
    "dry-run": { type: "boolean", description: "Show the release, the hosts and the batches; touch no network" },
    concurrency: { type: "string", description: "Hosts pushed at once (default 8)" },
    canary: { type: "string", description: "First push to N hosts, or to HOST,... (a batch of their own)" },
    batch: { type: "string", description: "Then N hosts, or P% of all, per batch (default: the rest in one)" },
    "max-failures": { type: "string", description: "Release failures allowed, N or P%, before it halts (default 0 with --canary/--batch)" },
    "max-unreachable": { type: "string", description: "Unreachable hosts allowed, N or P%, before it halts (default: no limit)" },
    pause: { type: "string", description: "Wait between batches (30s, 5m, 1h)" },
    "halt-rollback": { type: "boolean", description: "On a halt, roll the hosts this rollout updated back to their previous release" },
    ...rolloutOutputArgs,
  },
  run: action(async ({ args, rawArgs }) => {
    const { update } = await import("../../core/swarm/update.ts");
    using session = rolloutSession({ json: args.json, events: args.events });
    const report = await update({
      hosts: listArg(args.host),
      all: Boolean(args.all),
      includeSelf: Boolean(args["include-self"]),
      full: Boolean(args.full),
      artifact: repeatedArg(rawArgs, "artifact"),
      self: Boolean(args.self),
      dryRun: Boolean(args["dry-run"]),
      concurrency: args.concurrency === undefined ? undefined : Number(args.concurrency),
      allowDowngrade: Boolean(args["allow-downgrade"]),
      canary: str(args.canary),
      batch: str(args.batch),
      maxFailures: str(args["max-failures"]),
      maxUnreachable: str(args["max-unreachable"]),
      pause: str(args.pause),
      haltRollback: Boolean(args["halt-rollback"]),
      stop: session.stop,
      abort: session.abort,
      onRelease: (r, signer) => {
        if (!args.json && !args.events) err(`release ${r.manifest.version} ${short(r.manifest.id)} (${r.manifest.target}, ${(r.size / 1e6).toFixed(1)} MB) from ${r.source}, ${signer ? `signed by signing key ${signer}` : "unsigned"}\n`);
      },
      onEvent: session.onEvent,
      onProgress: session.onProgress,
    });
    if (report.dryRun) {
      const { batches, canaries, settings: { limits } } = report.plan;
      if (args.json) return printJson({ release: report.release, releases: report.releases, missing: report.missing, dry_run: true, hosts: report.targets, rollout: { batches, canaries, limits } });
      const plan = batches.length > 1 || limits.failures !== null || limits.unreachable !== null
        ? `\n${batches.map((b, i) => `  batch ${i + 1}${canaries && i === 0 ? " (canaries)" : ""}: ${b.join(", ")}`).join("\n")}\nhalts past ${limits.failures ?? "any number of"} release failure(s) or ${limits.unreachable ?? "any number of"} unreachable host(s)`
        : "";
      const address = new Map(report.targets.map((t) => [t.host, t.address]));
      const hosts = (names: string[]) => names.map((n) => `    ${n}  ${address.get(n)}`).join("\n");
      // A mixed fleet (DESIGN §16): the release per target, and the hosts whose target has none.
      const what = report.releases.length === 1 && report.missing.length === 0
        ? `${report.release.version} ${short(report.release.id)} (${report.release.size} bytes) to ${report.targets.length} host(s):\n${report.targets.map((t) => `  ${t.host}  ${t.address}`).join("\n")}`
        : `to ${report.targets.length} host(s), one release per target:\n${[
          ...report.releases.map((r) => `  ${r.target}: ${r.version} ${short(r.id)} (${r.size} bytes) from ${r.source}\n${hosts(r.hosts)}`),
          ...report.missing.map((m) => `  ${m.target}: no release (an error row each; give --artifact for ${m.target}, or leave --artifact out to build it)\n${hosts(m.hosts)}`),
        ].join("\n")}`;
      return out(`dry run: would push ${what}${plan}`);
    }
    session.end({ release: { id: report.release.id, version: report.release.version, size: report.release.size, signer: report.release.signer }, releases: report.releases, hosts: report.hosts, rollout: report.rollout! }, new Map(report.targets.map((t) => [t.host, t.address])));
  }),
});
