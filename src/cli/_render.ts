/**
 * Terminal output: aligned tables, colour only on a TTY, per-host status
 * words coloured by outcome (updated green, rolled-back yellow, error red),
 * and control characters escaped in anything a worker could have written.
 */
import { isatty } from "node:tty";
import { env } from "../lib/env.ts";
import { out as write } from "../lib/stdio.ts";

const tty = () => isatty(1) && !env("NO_COLOR");

const COLOURS: Record<string, string> = {
  updated: "32", unchanged: "32", renewed: "32", ok: "32", done: "32", "rolled-back": "33", reverted: "33", interrupted: "33", halted: "31",
  decommissioned: "90", pending: "90", skipped: "90", leased: "33", aborted: "90", error: "31", failed: "31",
};

/** A cell coloured by paint(): the one kind of cell table() does not clean. */
export class Painted {
  constructor(readonly text: string) {}
}

/** A status word, coloured by outcome on a TTY. */
export function paint(word: string): Painted {
  const c = COLOURS[word];
  return new Painted(c && tty() ? `\x1b[${c}m${clean(word)}\x1b[0m` : clean(word));
}

const TINTS = { red: "31", yellow: "33", green: "32" } as const;

/** Any text of ours (cleaned all the same) in a colour on a TTY: `swarm status` marks unhealthy, drift, expiring. */
export function tint(text: string, colour: keyof typeof TINTS | null): Painted {
  return new Painted(colour && tty() ? `\x1b[${TINTS[colour]}m${clean(text)}\x1b[0m` : clean(text));
}

/** Whether output goes to a terminal that takes colour (and a redraw). */
export const isTerminal = tty;

/**
 * C0 and C1 controls, DEL, line and paragraph separators, and the bidi
 * overrides: what lets text retitle a terminal, move its cursor, erase a
 * line or reorder what is shown.
 */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * Text from a worker (error messages, details, versions, log lines) made
 * safe to print, on a terminal or not (DESIGN §17): a compromised worker
 * must not be able to rewrite the operator's screen. Controls become
 * visible escapes (\x1b, \n, \u202e).
 */
export function clean(text: string): string {
  return text.replace(CONTROL, (c) => {
    const n = c.charCodeAt(0);
    if (c === "\n") return "\\n";
    if (c === "\t") return "\\t";
    if (c === "\r") return "\\r";
    return n <= 0xff ? `\\x${n.toString(16).padStart(2, "0")}` : `\\u${n.toString(16)}`;
  });
}

const visible = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "").length;

/**
 * Columns padded to the widest cell; the last column is never padded. Every
 * cell is cleaned: cells carry worker text. (Colour is added by paint(),
 * which only ever wraps our own status words.)
 */
export function table(header: string[], cells: Array<Array<string | Painted>>): string {
  const rows = cells.map((r) => r.map((c) => (c instanceof Painted ? c.text : clean(c))));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => visible(r[i] ?? ""))));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c + " ".repeat(widths[i]! - visible(c)))).join("  ").trimEnd();
  return [line(header.map((h) => h.toUpperCase())), ...rows.map(line)].join("\n") + "\n";
}

export function out(text: string): void {
  write(text.endsWith("\n") ? text : `${text}\n`);
}

/**
 * JSON on stdout. JSON.stringify escapes C0 controls but not DEL, C1 or the
 * bidi overrides, which some terminals act on: those are escaped too (\u…),
 * so the output stays valid JSON with the same values.
 */
export function printJson(v: unknown, indent: 2 | 0 = 2): void {
  const text = JSON.stringify(v, null, indent || undefined).replace(/[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  write(`${text}\n`);
}

/** One JSON value on one line (NDJSON), escaped as printJson escapes. */
export const printJsonLine = (v: unknown): void => printJson(v, 0);

export const short = (id: string | null | undefined) => (id ? id.slice(0, 12) : "—");
