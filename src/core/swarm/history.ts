/** `swarm history`: the registry's push rows, newest last, one host or all. */
import { usageError } from "../../lib/errors.ts";
import { type Push, Registry } from "../registry.ts";

export async function history(o: { host?: string; limit?: number }): Promise<Push[]> {
  const limit = o.limit ?? 50;
  if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw usageError("--limit takes a whole number from 1 to 100000");
  using reg = new Registry();
  if (o.host && !(await reg.host(o.host))) throw usageError(`no host named ${o.host} is enrolled`, "see `decnet swarm list`");
  return (await reg.pushes(o.host)).slice(-limit);
}
