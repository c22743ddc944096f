/**
 * Terminal output: aligned tables, colour only on a TTY, and per-host status
 * words coloured by outcome (updated green, rolled-back yellow, error red).
 */
import { isatty } from "node:tty";
import { env } from "../lib/env.ts";
import { out as write } from "../lib/stdio.ts";

const tty = () => isatty(1) && !env("NO_COLOR");

const COLOURS: Record<string, string> = { updated: "32", unchanged: "32", ok: "32", "rolled-back": "33", decommissioned: "90", error: "31" };

export function paint(word: string): string {
  const c = COLOURS[word];
  return c && tty() ? `\x1b[${c}m${word}\x1b[0m` : word;
}

const visible = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "").length;

/** Columns padded to the widest cell; the last column is never padded. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => visible(r[i] ?? ""))));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c + " ".repeat(widths[i]! - visible(c)))).join("  ").trimEnd();
  return [line(header.map((h) => h.toUpperCase())), ...rows.map(line)].join("\n") + "\n";
}

export function out(text: string): void {
  write(text.endsWith("\n") ? text : `${text}\n`);
}

export function printJson(v: unknown): void {
  write(`${JSON.stringify(v, null, 2)}\n`);
}

export const short = (id: string | null | undefined) => (id ? id.slice(0, 12) : "—");
