/** --days as a number (citty hands strings); range checked in core/trust. */
import { usageError } from "../../lib/errors.ts";

export function days(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw usageError(`--days ${v} is not a whole number of days`);
  return Number(v);
}
