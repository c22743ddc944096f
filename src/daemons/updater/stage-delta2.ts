/**
 * Staging from a format-2 delta (DESIGN §17): the bounded decoder
 * (lib/delta2-decode.ts) checks the header and every op against this base
 * before a byte is written, and decompresses each frame against the base's
 * own bytes; what comes out goes through the same VerifiedFile as any upload
 * (block digests, sha256, mode, release id). Like format 1, an unchanged
 * prefix is rewritten in place in the spare's copy and its hash resumed.
 */
import { openSync, readSync } from "node:fs";
import { join } from "node:path";
import { BLOCK_SIZE } from "../../protocol/delta.ts";
import { checkManifest } from "../../protocol/manifest.ts";
import { type Delta2Base, openDelta2 } from "../../lib/delta2-decode.ts";
import { DecnetError } from "../../lib/errors.ts";
import type { SlotPaths } from "../../lib/paths.ts";
import type { BaseRelease } from "./base-release.ts";
import type { Digests } from "./block-index.ts";
import type { FilePoints } from "./resume-cache.ts";
import type { Spare } from "./spare.ts";
import { copyBlocks, resumablePrefix } from "./stage-delta.ts";
import { bad, MAX_RELEASE_BYTES, stage, type StageOptions, type Staged, uploadBody, uploadChunks } from "./staging.ts";
import { VerifiedFile } from "./verified-file.ts";
import { roomForDelta2 } from "./disk-room.ts";
import { manifestTargetCheck } from "./target-gate.ts";

const COPY_CHUNK = BLOCK_SIZE * 64;

export async function stageDelta2(paths: SlotPaths, spare: Spare, base: BaseRelease | null, baseId: string, body: ReadableStream<Uint8Array> | null, o: StageOptions): Promise<Staged> {
  const raw = uploadBody(body, o, "delta");
  if (!base) throw new DecnetError("delta_unavailable", `base release ${baseId.slice(0, 12)} is not kept here`);
  // Disk preflight first (disk-room.ts), as for format 1: a file rebuilt in the spare's copy needs only what it grows by.
  const src = await roomForDelta2(paths, raw, o, (path, ops) => (resumablePrefix(base, path, ops) ? spare.inPlaceBytes(path) : 0));
  return stage(paths, o, "delta", async (staging) => {
    const count = { n: 0 };
    const chunks = uploadChunks(staging, src, o, count);
    const fds = new Map<string, number>();
    // Dictionaries come from the base as this worker verified it; the decoder asks only inside its files.
    const baseBytes: Delta2Base = {
      id: base.id,
      files: base.manifest.files,
      read(path, offset, length) {
        let fd = fds.get(path);
        if (fd === undefined) fds.set(path, (fd = staging.own(openSync(base.path(path), "r"))));
        const out = Buffer.allocUnsafe(length);
        for (let got = 0; got < length; ) {
          const n = readSync(fd, out, got, length - got, offset + got);
          if (n <= 0) throw new DecnetError("delta_unavailable", `base file ${path} is shorter than its manifest says`);
          got += n;
        }
        return out;
      },
    };
    const reader = await openDelta2({ [Symbol.asyncIterator]: () => chunks }, baseBytes);
    const h = reader.header;
    const checked = checkManifest(h.manifest);
    if (!checked.ok) throw bad(checked.problem, checked.issues);
    const m = checked.manifest;
    if (o.target) manifestTargetCheck(m, o.target);
    if (m.files.reduce((s, f) => s + f.size, 0) > MAX_RELEASE_BYTES) throw bad(`release declares more than ${MAX_RELEASE_BYTES} bytes`);
    const blocks: Digests = {};
    const points: FilePoints = {};
    let resumed = 0;
    let kept = 0;
    const buf = Buffer.alloc(COPY_CHUNK);
    let file: VerifiedFile | null = null;
    // Blocks the kept prefix already holds: the leading copies skip them.
    let skip = 0;
    for await (const ev of reader.events()) {
      if (ev.type === "file") {
        const prefix = resumablePrefix(base, ev.file.path, h.ops[ev.file.path]!);
        file = new VerifiedFile(staging, ev.file, prefix ? spare.take(ev.file.path, join(staging.dir, ev.file.path)) : null);
        if (prefix) file.copyPrefix(prefix);
        skip = prefix ? prefix.bytes / BLOCK_SIZE : 0;
        resumed += prefix?.bytes ?? 0;
        kept += file.kept;
      } else if (ev.type === "copy") {
        const first = ev.first + Math.min(skip, ev.count);
        const n = ev.count - Math.min(skip, ev.count);
        skip -= ev.count - n;
        if (n > 0) copyBlocks(staging, base, ev.path, first, n, file!, buf);
      } else if (ev.type === "bytes") {
        file!.write(ev.data);
      } else {
        ({ digests: blocks[ev.file.path]!, points: points[ev.file.path]! } = file!.finish());
        file = null;
      }
    }
    staging.complete(m);
    const size = m.files.reduce((s, f) => s + f.size, 0);
    const signature = h.signature === undefined ? null : new TextEncoder().encode(h.signature);
    return { dir: staging.dir, manifest: m, blocks, points, signature, report: { mode: "delta", bytes_received: count.n, bytes_written: size - kept, bytes_in_place: kept, bytes_resumed: resumed } };
  });
}
