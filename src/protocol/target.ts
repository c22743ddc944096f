/**
 * The CPUs a release is built for (DESIGN §16) and how each is recognised in
 * an ELF header: 64-bit little-endian, e_machine 0x3E (x86-64) or 0xB7
 * (aarch64). The header check is pure, so the master (`release pack`) and
 * the updater (the install gate) read an executable the same way.
 */
import { z } from "zod";

export const TARGETS = ["linux-x64", "linux-arm64"] as const;
export const Target = z.enum(TARGETS);
export type Target = z.infer<typeof Target>;
export const isTarget = (s: string): s is Target => (TARGETS as readonly string[]).includes(s);

/** e_machine per target (the ELF spec's EM_X86_64 and EM_AARCH64). */
export const ELF_MACHINE: Record<Target, number> = { "linux-x64": 0x3e, "linux-arm64": 0xb7 };

/** How many leading bytes `executableKind` needs. */
export const ELF_HEADER_BYTES = 20;

export type ExecutableKind =
  | { kind: "elf"; target: Target }
  /** An ELF file decnet cannot run: another class, byte order or machine, named for the refusal. */
  | { kind: "elf-other"; what: string }
  /** `#!`: runs through its interpreter on whatever CPU the worker has (the test fixtures are scripts). */
  | { kind: "script" }
  | { kind: "unknown" };

/** What the first bytes of an executable say it runs on. */
export function executableKind(head: Uint8Array): ExecutableKind {
  if (head.length >= 2 && head[0] === 0x23 && head[1] === 0x21) return { kind: "script" };
  if (head.length < 4 || head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c || head[3] !== 0x46) return { kind: "unknown" };
  if (head.length < ELF_HEADER_BYTES) return { kind: "elf-other", what: "a truncated ELF header" };
  if (head[4] !== 2) return { kind: "elf-other", what: `a ${head[4] === 1 ? "32-bit" : `class-${head[4]}`} ELF executable` };
  if (head[5] !== 1) return { kind: "elf-other", what: "a big-endian ELF executable" };
  const machine = head[18]! | (head[19]! << 8);
  const target = TARGETS.find((t) => ELF_MACHINE[t] === machine);
  return target ? { kind: "elf", target } : { kind: "elf-other", what: `an ELF executable for machine 0x${machine.toString(16)}` };
}

/** The words for a kind, in refusals: "a linux-arm64 executable". */
export function describeKind(k: ExecutableKind): string {
  switch (k.kind) {
    case "elf": return `a ${k.target} executable`;
    case "elf-other": return k.what;
    case "script": return "a script";
    case "unknown": return "neither an ELF executable nor a script";
  }
}
