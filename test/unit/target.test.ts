/**
 * DESIGN §16 in process: what an executable's first bytes say it runs on,
 * the install gate that refuses a release for another target (its manifest,
 * or an ELF header that disagrees with it), and `release pack` taking the
 * target from the header rather than from the packing machine.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { packTarget } from "../../src/core/release.ts";
import { targetGate } from "../../src/daemons/updater/target-gate.ts";
import { buildInfo } from "../../src/lib/build-info.ts";
import { fileKind } from "../../src/lib/elf.ts";
import { manifestFor } from "../../src/protocol/manifest.ts";
import { executableKind } from "../../src/protocol/target.ts";
import { SCRIPT } from "../fixtures/tar.ts";

/** An ELF header: class (1 = 32-bit, 2 = 64-bit), data (1 = LE, 2 = BE), e_machine, padded to 64 bytes. */
function elfHeader(machine: number, cls = 2, data = 1): Uint8Array {
  const b = new Uint8Array(64);
  b.set([0x7f, 0x45, 0x4c, 0x46, cls, data, 1]);
  b[16] = 2; // ET_EXEC
  if (data === 1) { b[18] = machine & 0xff; b[19] = machine >> 8; } else { b[18] = machine >> 8; b[19] = machine & 0xff; }
  return b;
}

const OWN = buildInfo().target as "linux-x64" | "linux-arm64";
const OTHER = OWN === "linux-x64" ? "linux-arm64" : "linux-x64";
const MACHINE = { "linux-x64": 0x3e, "linux-arm64": 0xb7 } as Record<string, number>;

test("the first bytes of an executable say what it runs on", () => {
  expect({
    x64: executableKind(elfHeader(0x3e)),
    arm64: executableKind(elfHeader(0xb7)),
    riscv: executableKind(elfHeader(0xf3)),
    i386: executableKind(elfHeader(0x03, 1)),
    bigEndian: executableKind(elfHeader(0xb7, 2, 2)),
    truncated: executableKind(elfHeader(0xb7).subarray(0, 12)),
    script: executableKind(new TextEncoder().encode(SCRIPT)),
    empty: executableKind(new Uint8Array()),
    gzip: executableKind(new Uint8Array([0x1f, 0x8b, 8, 0])),
    // The bun running this test is a real ELF file of this machine's target.
    thisBun: fileKind(process.execPath),
  }).toEqual({
    x64: { kind: "elf", target: "linux-x64" },
    arm64: { kind: "elf", target: "linux-arm64" },
    riscv: { kind: "elf-other", what: "an ELF executable for machine 0xf3" },
    i386: { kind: "elf-other", what: "a 32-bit ELF executable" },
    bigEndian: { kind: "elf-other", what: "a big-endian ELF executable" },
    truncated: { kind: "elf-other", what: "a truncated ELF header" },
    script: { kind: "script" },
    empty: { kind: "unknown" },
    gzip: { kind: "unknown" },
    thisBun: { kind: "elf", target: OWN },
  });
});

function staged(exe: Uint8Array | string, target: string) {
  const dir = mkdtempSync(join(tmpdir(), "decnet-target-"));
  writeFileSync(join(dir, "decnet"), exe, { mode: 0o755 });
  const manifest = manifestFor({ version: "1.0.0", target }, [{ path: "decnet", mode: "0755", size: 1, sha256: "0".repeat(64) }]);
  return { dir, manifest, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

/** "ok", or the refusal's code and message. */
function gate(exe: Uint8Array | string, target: string): string {
  using s = staged(exe, target);
  try {
    targetGate(OWN)(s);
    return "ok";
  } catch (e) {
    const x = e as { code: string; message: string; detail: unknown };
    return `${x.code}: ${x.message.replace(/release [0-9a-f]{12}/, "release R")} ${JSON.stringify(x.detail)}`;
  }
}

test("the install gate takes only this worker's target, with an executable that is what the manifest says", () => {
  expect({
    own: gate(elfHeader(MACHINE[OWN]!), OWN),
    ownScript: gate(SCRIPT, OWN),
    otherManifest: gate(elfHeader(MACHINE[OTHER]!), OTHER),
    otherScript: gate(SCRIPT, OTHER),
    lyingManifest: gate(elfHeader(MACHINE[OTHER]!), OWN),
    riscv: gate(elfHeader(0xf3), OWN),
    garbage: gate("MZ\x90\x00", OWN),
    madeUp: gate(elfHeader(MACHINE[OWN]!), "plan9-mips"),
  }).toEqual({
    own: "ok",
    ownScript: "ok",
    otherManifest: `wrong_target: release R is built for ${OTHER}, this worker is ${OWN}; nothing was changed {"worker":"${OWN}","manifest":"${OTHER}","executable":"a ${OTHER} executable"}`,
    otherScript: `wrong_target: release R is built for ${OTHER}, this worker is ${OWN}; nothing was changed {"worker":"${OWN}","manifest":"${OTHER}","executable":"a script"}`,
    lyingManifest: `wrong_target: release R says ${OWN} but its decnet is a ${OTHER} executable; nothing was changed {"worker":"${OWN}","manifest":"${OWN}","executable":"a ${OTHER} executable"}`,
    riscv: `wrong_target: release R says ${OWN} but its decnet is an ELF executable for machine 0xf3; nothing was changed {"worker":"${OWN}","manifest":"${OWN}","executable":"an ELF executable for machine 0xf3"}`,
    garbage: `wrong_target: release R says ${OWN} but its decnet is neither an ELF executable nor a script; nothing was changed {"worker":"${OWN}","manifest":"${OWN}","executable":"neither an ELF executable nor a script"}`,
    madeUp: `wrong_target: release R is built for plan9-mips, this worker is ${OWN}; nothing was changed {"worker":"${OWN}","manifest":"plan9-mips","executable":"a ${OWN} executable"}`,
  });
});

test("release pack takes the target from the ELF header, whatever machine packs it; a script takes --target", () => {
  const dir = mkdtempSync(join(tmpdir(), "decnet-packtarget-"));
  try {
    const file = (name: string, data: Uint8Array | string) => (writeFileSync(join(dir, name), data, { mode: 0o755 }), join(dir, name));
    const other = file("other", elfHeader(MACHINE[OTHER]!));
    const script = file("script", SCRIPT);
    const riscv = file("riscv", elfHeader(0xf3));
    const outcome = (f: () => string) => { try { return f(); } catch (e) { return `${(e as { code: string }).code}: ${(e as Error).message}`; } };
    expect({
      other: outcome(() => packTarget(other, "other")),
      otherStated: outcome(() => packTarget(other, "other", OTHER)),
      otherContradicted: outcome(() => packTarget(other, "other", OWN)),
      script: outcome(() => packTarget(script, "script")),
      scriptStated: outcome(() => packTarget(script, "script", OTHER)),
      badTarget: outcome(() => packTarget(script, "script", "linux-mips")),
      riscv: outcome(() => packTarget(riscv, "riscv")),
    }).toEqual({
      other: OTHER,
      otherStated: OTHER,
      otherContradicted: `usage: other is a ${OTHER} executable, not ${OWN}`,
      script: OWN,
      scriptStated: OTHER,
      badTarget: "usage: --target linux-mips: not a target decnet builds",
      riscv: "usage: riscv is an ELF executable for machine 0xf3, not a linux-x64 or linux-arm64 executable",
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an upload whose manifest names another target is refused as soon as the manifest is read, before its executable", async () => {
  const { stageUpload } = await import("../../src/daemons/updater/stage.ts");
  const { installPaths } = await import("../../src/lib/paths.ts");
  const { manifest, tgz } = await import("../fixtures/tar.ts");
  const dir = mkdtempSync(join(tmpdir(), "decnet-early-"));
  try {
    const paths = installPaths(dir);
    const m = manifest([{ path: "decnet", data: SCRIPT }], { target: OTHER });
    // The archive ends right after the manifest: only an early refusal can answer wrong_target rather than "archive ends before decnet".
    const body = tgz([{ name: "manifest.json", data: m }]);
    const err = await stageUpload(paths, new Blob([body]).stream(), { maxBytes: 1 << 20, contentLength: body.byteLength, target: OWN }).catch((e) => e);
    const { readdirSync } = await import("node:fs");
    expect({ code: err.code, detail: err.detail, staging: readdirSync(paths.releases).filter((n) => n.startsWith(".staging")) }).toEqual({ code: "wrong_target", detail: { worker: OWN, manifest: OTHER }, staging: [] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
