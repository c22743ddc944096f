/** `decnet swarm rollout list | show ID | resume ID [--retry-unreachable] | abort ID` (DESIGN §12). */
import { defineCommand } from "citty";
import { jsonArg } from "../_args.ts";
import { action } from "../_action.ts";
import { tallyText } from "../_progress.ts";
import { out, paint, printJson, short, table } from "../_render.ts";
import { hostTable, rolloutJson, rolloutOutputArgs, rolloutSession } from "./_rollout.ts";

const idArg = { id: { type: "positional", description: "Rollout id (see `swarm rollout list`)", required: true } } as const;
const manage = () => import("../../core/rollout/manage.ts");

const list = defineCommand({
  meta: { name: "list", description: "The newest rollouts (50), newest first" },
  args: { ...jsonArg },
  run: action(async ({ args }) => {
    const rows = await (await manage()).listRollouts();
    if (args.json) return printJson(rows.map(rolloutJson));
    out(table(["id", "state", "created", "release", "operator", "hosts"], rows.map((r) => [r.id, paint(r.state), r.created_at, `${r.release.version} ${short(r.release.id)}`, r.operator, tallyText(r.tally)])));
  }),
});

const show = defineCommand({
  meta: { name: "show", description: "A rollout: settings, batches, and every host's outcome" },
  args: { ...idArg, ...jsonArg },
  run: action(async ({ args }) => {
    const r = await (await manage()).showRollout(String(args.id));
    if (args.json) return printJson(r);
    const s = r.settings;
    const flags = [s.canary && `--canary ${s.canary}`, s.batch && `--batch ${s.batch}`, s.max_failures && `--max-failures ${s.max_failures}`, s.max_unreachable && `--max-unreachable ${s.max_unreachable}`, s.pause && `--pause ${s.pause}`, s.halt_rollback && "--halt-rollback", s.include_self && "--include-self"].filter(Boolean).join(" ");
    out(`rollout ${r.id}: ${paint(r.state).text}${r.halt_reason ? ` (${r.halt_reason})` : ""}, ${tallyText(r.tally)}\n`
      + `release ${r.release.version} ${short(r.release.id)} from ${r.release.source}, started ${r.created_at} by ${r.operator}, run ${r.run}\n`
      + `settings: ${flags || "(a plain update: every host tried)"}; halts past ${s.limits.failures ?? "any number of"} release failure(s), ${s.limits.unreachable ?? "any number of"} unreachable\n`
      + hostTable(r, new Map()) + (r.resume ? `to resume: ${r.resume}\n` : ""));
  }),
});

const resume = defineCommand({
  meta: { name: "resume", description: "Continue a halted or interrupted rollout: its pending hosts, same release and settings" },
  args: { ...idArg, "retry-unreachable": { type: "boolean", description: "Try the hosts that were unreachable again too" }, ...rolloutOutputArgs },
  run: action(async ({ args }) => {
    const { resumeRollout } = await import("../../core/rollout/run.ts");
    using session = rolloutSession({ json: args.json, events: args.events });
    const r = (await manage()).view(await resumeRollout(String(args.id), { retryUnreachable: Boolean(args["retry-unreachable"]), ...session }));
    session.end({ release: r.release, hosts: r.hosts.flatMap((h) => (h.result ? [h.result] : [])), rollout: r });
  }),
});

const abort = defineCommand({
  meta: { name: "abort", description: "Mark a rollout aborted for good (it cannot be resumed); drops its cached release" },
  args: { ...idArg, ...jsonArg },
  run: action(async ({ args }) => {
    const r = await (await manage()).abortRollout(String(args.id));
    if (args.json) return printJson(rolloutJson(r));
    out(`rollout ${r.id} aborted: ${tallyText(r.tally)}`);
  }),
});

export const rolloutCommands = { list, show, resume, abort };

export default defineCommand({
  meta: { name: "rollout", description: "Rollouts: list, show, resume, abort" },
  subCommands: rolloutCommands,
});
