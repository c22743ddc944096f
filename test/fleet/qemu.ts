/**
 * A linux-arm64 worker on this x86_64 machine (DESIGN §16): the arm64 build
 * runs under qemu-user, started by the kernel through binfmt_misc, so the
 * updater spawns its agent and re-executes itself exactly as on a real
 * board. Needs Debian's qemu-user-static (the interpreter) and
 * libc6-arm64-cross (the arm64 build is dynamically linked against
 * /lib/ld-linux-aarch64.so.1; QEMU_LD_PREFIX points qemu at the cross libc).
 * `qemuUnavailable()` sets up what it can as root (mounts binfmt_misc,
 * registers aarch64 with the F flag: the interpreter opened once, so it
 * works from any mount namespace) and otherwise says why, for the tests to
 * skip with that line.
 */
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { build } from "../../build.ts";
import { binaries, CACHE, type Packed, packRelease, runCli } from "./harness.ts";

export const QEMU_AARCH64 = "/usr/bin/qemu-aarch64-static";
export const QEMU_LD_PREFIX = "/usr/aarch64-linux-gnu";
const LD_SO = join(QEMU_LD_PREFIX, "lib/ld-linux-aarch64.so.1");
const BINFMT = "/proc/sys/fs/binfmt_misc";
/** The arm64 worker's environment: its cross libc for qemu (harmless on a real arm64 machine). */
export const ARM64_ENV: Record<string, string> = { QEMU_LD_PREFIX };

// e_ident of a 64-bit little-endian ELF and e_machine 0xB7 (aarch64); e_type 2 or 3.
const MAGIC = "\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00";
const MASK = "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff";
const MAGIC_HEX = "7f454c460201010000000000000000000200b700";

/** The registered binfmt entries for aarch64: name, enabled, flags. */
function aarch64Entries(): Array<{ name: string; enabled: boolean; flags: string; interpreter: string }> {
  return readdirSync(BINFMT)
    .filter((n) => n !== "register" && n !== "status")
    .flatMap((name) => {
      const text = (() => { try { return readFileSync(join(BINFMT, name), "utf8"); } catch { return ""; } })();
      if (!text.includes(`magic ${MAGIC_HEX}`)) return [];
      const field = (k: string) => text.match(new RegExp(`^${k} (.*)$`, "m"))?.[1] ?? "";
      return [{ name, enabled: text.startsWith("enabled"), flags: field("flags"), interpreter: field("interpreter") }];
    });
}

async function setUp(): Promise<string | null> {
  if (process.arch === "arm64") return null;
  if (!existsSync(QEMU_AARCH64)) return `${QEMU_AARCH64} is missing (apt-get install qemu-user-static)`;
  if (!existsSync(LD_SO)) return `${LD_SO} is missing (apt-get install libc6-arm64-cross)`;
  const root = process.getuid?.() === 0;
  if (!existsSync(join(BINFMT, "register"))) {
    if (!root) return `binfmt_misc is not mounted at ${BINFMT} and mounting it needs root`;
    const m = await runCli("mount", ["-t", "binfmt_misc", "binfmt_misc", BINFMT], {}, { timeoutMs: 10_000 });
    if (m.code !== 0) return `cannot mount binfmt_misc at ${BINFMT}: ${m.stderr.trim() || `exit ${m.code}`}`;
  }
  const usable = aarch64Entries().find((e) => e.enabled && e.flags.includes("F"));
  if (!usable) {
    if (!root) return "no aarch64 interpreter is registered in binfmt_misc with the F flag, and registering one needs root";
    const ours = aarch64Entries().find((e) => e.name === "qemu-aarch64");
    try {
      // A disabled or flag-less entry of that name is replaced by ours.
      if (ours) writeFileSync(join(BINFMT, ours.name), "-1");
      writeFileSync(join(BINFMT, "register"), `:qemu-aarch64:M::${MAGIC}:${MASK}:${QEMU_AARCH64}:F`);
    } catch (e) {
      return `cannot register aarch64 in binfmt_misc: ${(e as Error).message}`;
    }
  }
  // The proof: the kernel runs an arm64 ELF (the cross ld.so itself) through qemu.
  const r = await runCli(LD_SO, ["--version"], ARM64_ENV, { timeoutMs: 20_000 });
  if (r.code !== 0) return `an aarch64 executable does not run through binfmt_misc: ${(r.stderr || r.stdout).trim().split("\n")[0] ?? `exit ${r.code}`}`;
  return null;
}

let unavailable: Promise<string | null> | undefined;

/** Why a linux-arm64 worker cannot run here, or null when it can. */
export function qemuUnavailable(): Promise<string | null> {
  unavailable ??= setUp().catch((e) => `qemu-user setup failed: ${(e as Error).message}`);
  return unavailable;
}

export interface ArmBuilt {
  bin: string;
  bin2: string;
  v1: Packed;
  v2: Packed;
}

let armBuilt: Promise<ArmBuilt> | undefined;

/**
 * The arm64 builds of this tree at the same two versions as `binaries()`
 * (so a push of each target's v2 is one rollout), packed by the x64 CLI.
 */
export function arm64Releases(): Promise<ArmBuilt> {
  armBuilt ??= (async () => {
    const b = await binaries();
    const dir = join(CACHE, "arm64");
    mkdirSync(dir, { recursive: true });
    const a = await build({ out: join(dir, "decnet"), target: "linux-arm64", version: b.version });
    const c = await build({ out: join(dir, "decnet-v2"), target: "linux-arm64", version: b.version2 });
    const [v1, v2] = await Promise.all([packRelease(a.out, join(dir, "v1.tar.gz"), [], ARM64_ENV), packRelease(c.out, join(dir, "v2.tar.gz"), [], ARM64_ENV)]);
    return { bin: a.out, bin2: c.out, v1, v2 };
  })();
  return armBuilt;
}

/** e_machine of an ELF file (0x3e x86-64, 0xb7 aarch64), or null. */
export function elfMachine(path: string): number | null {
  try {
    const fd = openSync(path, "r");
    const b = Buffer.alloc(20);
    try { readSync(fd, b, 0, 20, 0); } finally { closeSync(fd); }
    return b[0] === 0x7f && b[1] === 0x45 ? b[18]! | (b[19]! << 8) : null;
  } catch {
    return null;
  }
}
