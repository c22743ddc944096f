/**
 * `bun bench/fresh-memory.ts`: what this machine charges for memory it has
 * not touched yet against memory it has. On a VM whose guest memory is
 * backed lazily by the host (this project's machine), the first write to a
 * page is a host page fault, and new page cache costs the same: that is
 * what made every delta install's full-file copy slow with 12 workers on one
 * machine, and why the updater rewrites a spare in place (README, Fast pushes).
 */
const GiB = 2 ** 30;
const b = new Uint8Array(GiB);
for (let i = 0; i < 3; i++) {
  const t0 = performance.now();
  b.fill(i + 1);
  const ms = performance.now() - t0;
  process.stdout.write(`${i === 0 ? "first fill (fresh pages)" : `fill ${i + 1} (same pages)    `}  ${ms.toFixed(0).padStart(5)} ms  ${(GiB / 2 ** 20 / (ms / 1000)).toFixed(0).padStart(6)} MiB/s\n`);
}
