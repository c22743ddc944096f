/** `decnet swarm update`: push a release to hosts and print one row per host. */
import { defineCommand } from "citty";
import { action, listArg } from "../_action.ts";
import { jsonArg } from "../_args.ts";
import { progressPrinter } from "../_progress.ts";
import { out, paint, printJson, short, table } from "../_render.ts";
import { err } from "../../lib/stdio.ts";

export default defineCommand({
  meta: { name: "update", description: "Push a release to hosts (agent first)" },
  args: {
    host: { type: "string", description: "Host name, or a comma-separated list (repeatable)" },
    all: { type: "boolean", description: "Every host not decommissioned" },
    artifact: { type: "string", description: "A release .tar.gz (or an executable to pack)" },
    self: { type: "boolean", description: "Push the running decnet executable" },
    full: { type: "boolean", description: "Send the whole release, not a delta against what the host has" },
    "include-self": { type: "boolean", description: "Then update each host's updater (only where the agent updated)" },
    "allow-downgrade": { type: "boolean", description: "Let a signed release older than what a host runs in (never below its floor)" },
    "dry-run": { type: "boolean", description: "Show the release and the hosts; touch no network" },
    concurrency: { type: "string", description: "Hosts pushed at once (default 8)" },
    ...jsonArg,
  },
  run: action(async ({ args }) => {
    const { update } = await import("../../core/swarm/update.ts");
    const hosts = listArg(args.host);
    const progress = args.json || args["dry-run"] ? null : progressPrinter(hosts.length ? hosts : ["…"]);
    let printer = progress;
    const report = await update({
      hosts,
      all: Boolean(args.all),
      includeSelf: Boolean(args["include-self"]),
      full: Boolean(args.full),
      artifact: args.artifact,
      self: Boolean(args.self),
      dryRun: Boolean(args["dry-run"]),
      concurrency: args.concurrency === undefined ? undefined : Number(args.concurrency),
      allowDowngrade: Boolean(args["allow-downgrade"]),
      onRelease: (r, signer) => {
        if (!args.json) err(`release ${r.manifest.version} ${short(r.manifest.id)} (${(r.size / 1e6).toFixed(1)} MB) from ${r.source}, ${signer ? `signed by signing key ${signer}` : "unsigned"}\n`);
      },
      onProgress: (p) => {
        if (!printer && !args.json && !args["dry-run"]) printer = progressPrinter([p.host]);
        printer?.onProgress(p);
      },
    });
    printer?.finish();
    if (report.dryRun) {
      if (args.json) return printJson({ release: report.release, dry_run: true, hosts: report.targets });
      return out(`dry run: would push ${report.release.version} ${short(report.release.id)} (${report.release.size} bytes) to ${report.targets.length} host(s):\n${report.targets.map((t) => `  ${t.host}  ${t.address}`).join("\n")}`);
    }
    if (args.json) printJson({ release: { id: report.release.id, version: report.release.version, size: report.release.size, signer: report.release.signer }, hosts: report.hosts });
    else out(table(["host", "address", "agent", "self", "detail"], report.hosts.map((h) => [h.host, h.address, paint(h.agent), h.self === null ? "—" : paint(h.self), h.detail])));
    const failed = report.hosts.filter((h) => h.agent !== "updated" || h.self === "error" || h.self === "rolled-back").length;
    if (failed) {
      if (!args.json) err(`decnet: ${failed} of ${report.hosts.length} host(s) not updated — see the detail column\n`);
      process.exitCode = 1;
    }
  }),
});
