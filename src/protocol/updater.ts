/** Updater routes (DESIGN §5): response shapes and the 409 detail. */
import { z } from "zod";
import { ProbeTranscript } from "./common.ts";

export const UpdaterHealth = z.object({
  status: z.literal("ok"),
  role: z.literal("updater"),
  version: z.string(),
  release: z.string().nullable(),
  pid: z.number().int(),
  busy: z.string().nullable(),
  agent: z.object({ release: z.string().nullable(), pid: z.number().int().nullable(), healthy: z.boolean() }),
});
export type UpdaterHealth = z.infer<typeof UpdaterHealth>;

export const ReleaseStatus = z.enum(["good", "failed", "unknown"]);

export const ReleaseInfo = z.object({
  id: z.string(),
  version: z.string().nullable(),
  git: z.object({ sha: z.string(), dirty: z.boolean() }).nullable(),
  installed_at: z.string().nullable(),
  status: ReleaseStatus,
  current: z.boolean(),
  previous: z.boolean(),
});
export type ReleaseInfo = z.infer<typeof ReleaseInfo>;

export const ReleasesResponse = z.object({
  current: z.string().nullable(),
  previous: z.string().nullable(),
  releases: z.array(ReleaseInfo),
});
export type ReleasesResponse = z.infer<typeof ReleasesResponse>;

export const ReleaseRef = z.object({ id: z.string(), version: z.string() });

/** 200 from /update and /rollback. */
export const SwitchResponse = z.object({
  status: z.enum(["updated", "unchanged", "rolled-back"]),
  release: ReleaseRef,
  previous: z.string().nullable(),
  agent_pid: z.number().int().nullable(),
  transcript: ProbeTranscript.nullable(),
});
export type SwitchResponse = z.infer<typeof SwitchResponse>;

/** The `detail` of a 409 from /update (rolled_back) or /rollback (unhealthy). */
export const RolledBackDetail = z.object({
  rolled_back: z.boolean(),
  failed_release: z.string(),
  current: z.string().nullable(),
  transcripts: z.object({ new: ProbeTranscript, old: ProbeTranscript.nullable() }),
});
export type RolledBackDetail = z.infer<typeof RolledBackDetail>;

