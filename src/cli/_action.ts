/**
 * The CLI's one error printer and runner: every failure becomes one line
 * (what, where, what to do), exit 1 for a failed operation and 2 for bad
 * usage; unknown flags are usage errors; stacks only with DECNET_DEBUG=1.
 */
import { type ArgsDef, type CommandContext, type CommandDef, runCommand, showUsage } from "citty";
import { env } from "../lib/env.ts";
import { DecnetError, RemoteError, usageError } from "../lib/errors.ts";
import { err } from "../lib/stdio.ts";
import { clean } from "./_render.ts";

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** Throws a usage error for any --flag or -f the command does not define. */
function checkFlags(def: ArgsDef, rawArgs: string[]): void {
  const known = new Map<string, string | undefined>();
  for (const [name, a] of Object.entries(def)) {
    if (a.type === "positional") continue;
    known.set(kebab(name), a.type);
    const aliases = "alias" in a ? a.alias : undefined;
    for (const al of [aliases ?? []].flat()) known.set(al, a.type);
  }
  for (const raw of rawArgs) {
    if (raw === "--") break;
    if (!raw.startsWith("-") || raw === "-" || /^-\d/.test(raw)) continue;
    const name = raw.replace(/^--?/, "").split("=")[0]!;
    if (known.has(name)) continue;
    if (name.startsWith("no-") && known.get(name.slice(3)) === "boolean") continue;
    throw usageError(`unknown option ${raw.split("=")[0]}`);
  }
}

/** Wraps a command's run: flag check first, then the body. */
export function action<T extends ArgsDef>(fn: (ctx: CommandContext<T>) => Promise<void> | void) {
  return async (ctx: CommandContext<T>) => {
    checkFlags((ctx.cmd.args ?? {}) as ArgsDef, ctx.rawArgs);
    await fn(ctx);
  };
}

/**
 * Every value of a string flag given more than once (`--artifact A --artifact B`,
 * or `--artifact=A`): citty keeps only the last, so they are read from the raw args.
 */
export function repeatedArg(rawArgs: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i]!;
    if (a === "--") break;
    if (a === `--${name}` && i + 1 < rawArgs.length) out.push(rawArgs[++i]!);
    else if (a.startsWith(`--${name}=`)) out.push(a.slice(name.length + 3));
  }
  return out;
}

/** A flag given more than once, or as a comma list, as one list. */
export function listArg(v: unknown): string[] {
  const items = Array.isArray(v) ? v : v === undefined || v === true || v === false ? [] : [v];
  return items.flatMap((s) => String(s).split(",")).map((s) => s.trim()).filter(Boolean);
}

export function printError(e: unknown): number {
  if (e instanceof DecnetError || e instanceof RemoteError) {
    // A RemoteError's message is a worker's words: never printed raw.
    const where = e instanceof RemoteError ? `${e.host}: ` : "";
    const hint = e.hint ? ` — ${clean(e.hint)}` : "";
    err(`decnet: ${where}${clean(e.message)}${hint}\n`);
    if (env("DECNET_DEBUG")) err(`${e.stack}\n`);
    return e instanceof DecnetError ? e.exitCode : 1;
  }
  if (e instanceof Error && e.name === "CLIError") {
    err(`decnet: ${e.message.replace(/\x1b\[[0-9;]*m/g, "")} — see --help\n`);
    return 2;
  }
  const msg = clean(e instanceof Error ? e.message : String(e));
  err(`decnet: unexpected error: ${msg} — rerun with DECNET_DEBUG=1 and report it\n`);
  if (env("DECNET_DEBUG") && e instanceof Error) err(`${e.stack}\n`);
  return 1;
}

async function resolve<T>(v: unknown): Promise<T> {
  return (typeof v === "function" ? await v() : await v) as T;
}

/** Finds the command a --help refers to, walking subcommand names. */
async function helpTarget(root: CommandDef<any>, rawArgs: string[]): Promise<[CommandDef<any>, CommandDef<any> | undefined]> {
  let cmd = root;
  let parent: CommandDef<any> | undefined;
  for (const a of rawArgs) {
    if (a.startsWith("-")) continue;
    const subs = await resolve<Record<string, unknown> | undefined>(cmd.subCommands);
    if (!subs || !(a in subs)) break;
    parent = cmd;
    cmd = await resolve<CommandDef<any>>(subs[a]);
  }
  return [cmd, parent];
}

export async function runCli(root: CommandDef<any>, rawArgs = process.argv.slice(2)): Promise<void> {
  try {
    if (rawArgs.includes("--help") || rawArgs.includes("-h") || rawArgs.length === 0) {
      await showUsage(...(await helpTarget(root, rawArgs)));
      // No command at all is bad usage; asking for help is not.
      if (rawArgs.length === 0) process.exitCode = 2;
      return;
    }
    await runCommand(root, { rawArgs });
  } catch (e) {
    process.exitCode = printError(e);
  }
}
