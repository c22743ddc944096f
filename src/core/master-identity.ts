/**
 * Replacing the master identity: a new key and certificate built beside the
 * old (master.next), renamed into place, then — for `swarm rotate-master` —
 * every other master certificate revoked and a new CRL published.
 */
import { existsSync, readFileSync, renameSync, rmSync } from "node:fs";
import { writeFileAtomic, fsyncPath } from "../lib/atomic.ts";
import { bundlePaths, ensurePrivateDir, homePaths } from "../lib/paths.ts";
import { describeCert, issue, loadOrCreateCa, MASTER_CN } from "./ca.ts";
import { revoke } from "./crl.ts";
import { IdentityStore } from "./registry-identity.ts";

export interface ReplaceMasterOptions {
  paths?: ReturnType<typeof homePaths>;
  /** rotate-master: revoke every master certificate but the new one. */
  revokeOld: boolean;
  now?: Date;
}

export interface ReplaceMasterResult {
  serial: string;
  notAfter: string;
  revoked: string[];
  crl: number | null;
}

export async function replaceMasterIdentity(o: ReplaceMasterOptions): Promise<ReplaceMasterResult> {
  const paths = o.paths ?? homePaths();
  const now = o.now ?? new Date();
  const ca = await loadOrCreateCa(paths);
  using store = new IdentityStore(paths.db);
  // A master certificate made before serials were recorded is recorded now, so it can be revoked.
  if (existsSync(paths.master.crt)) {
    try {
      const pem = readFileSync(paths.master.crt, "utf8");
      const d = describeCert(pem);
      if (!await store.cert(d.serial)) await store.recordIssued({ certPem: pem, serial: d.serial, cn: d.cn, role: "master", notBefore: now.toISOString(), notAfter: d.notAfter, spki: d.spki }, MASTER_CN, now);
    } catch {} // an unreadable certificate is replaced; nothing to record
  }
  const issued = await issue(ca, { role: "master", cn: MASTER_CN, now });
  const next = bundlePaths(paths.masterNext, "worker");
  rmSync(next.dir, { recursive: true, force: true });
  ensurePrivateDir(next.dir);
  writeFileAtomic(next.key, issued.keyPem, 0o600);
  writeFileAtomic(next.crt, issued.certPem, 0o644);
  writeFileAtomic(next.ca, ca.pem, 0o644);
  await store.recordIssued(issued, MASTER_CN, now);
  // Two renames: a crash between them leaves no master dir, and the next
  // command makes a fresh identity; a rerun of rotate-master revokes every
  // master certificate but its own, so none is left valid by accident.
  rmSync(paths.masterOld, { recursive: true, force: true });
  if (existsSync(paths.master.dir)) renameSync(paths.master.dir, paths.masterOld);
  renameSync(next.dir, paths.master.dir);
  fsyncPath(paths.caDir);
  rmSync(paths.masterOld, { recursive: true, force: true });
  let revoked: string[] = [];
  let crl: number | null = null;
  if (o.revokeOld) {
    const old = (await store.certs(MASTER_CN, ["master"], { active: true, now })).map((c) => c.serial).filter((s) => s !== issued.serial);
    const r = await revoke(ca, store, old, "superseded", { now, file: paths.crl });
    revoked = r.revoked;
    crl = r.number;
  }
  await store.event(o.revokeOld ? "rotate-master" : "renew-master", MASTER_CN, JSON.stringify({ serial: issued.serial, revoked }), now);
  return { serial: issued.serial, notAfter: issued.notAfter, revoked, crl };
}
