/**
 * history.json: when each release of a set was installed and whether it
 * proved good, failed, or is not known yet. Releases stay exactly what was
 * verified; their status lives here.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { ReleaseStatus } from "../../protocol/updater.ts";
import { writeFileAtomic } from "../../lib/atomic.ts";

const Entries = z.record(z.string(), z.object({ installed_at: z.string(), status: ReleaseStatus, signer: z.string().nullable().optional() }));
export type HistoryEntries = z.infer<typeof Entries>;
export type Status = z.infer<typeof ReleaseStatus>;

export class History {
  constructor(private file: string) {}

  read(): HistoryEntries {
    try {
      return Entries.parse(JSON.parse(readFileSync(this.file, "utf8")));
    } catch {
      return {};
    }
  }

  private write(h: HistoryEntries, durable = true): void {
    writeFileAtomic(this.file, `${JSON.stringify(h, null, 1)}\n`, 0o600, { durable });
  }

  /** Sets `id`'s status; `signer` when an install checked its signature (kept otherwise). */
  mark(id: string, status: Status, now = new Date(), signer?: string | null): void {
    const h = this.read();
    h[id] = { installed_at: h[id]?.installed_at ?? now.toISOString(), status, signer: signer === undefined ? (h[id]?.signer ?? null) : signer };
    // "unknown" (just before a switch) is not forced to disk: after a power
    // cut the journal's recovery marks that release failed anyway.
    this.write(h, status !== "unknown");
  }

  /** Drops the entries of releases that are gone (what a crash inside a prune leaves). */
  keepOnly(present: Set<string>): void {
    const h = this.read();
    const stale = Object.keys(h).filter((id) => !present.has(id));
    if (!stale.length) return;
    for (const id of stale) delete h[id];
    this.write(h);
  }
}
