/**
 * The e2e preamble in one call: a fleet made before the file's tests (with
 * the named updaters started) and disposed after them, and the per-file
 * default timeout real daemons and 50 MB releases need.
 */
import { afterAll, beforeAll, setDefaultTimeout } from "bun:test";
import { Fleet, type FleetOptions } from "./harness.ts";

export interface UseFleetOptions extends FleetOptions {
  /** Workers whose updater starts before the tests ("all" for every one). */
  start?: string[] | "all";
}

/**
 * The file's fleet. It exists from the file's beforeAll on; the value
 * returned here forwards to it, so tests use it like the fleet itself.
 */
export function useFleet(o: UseFleetOptions): Fleet {
  // Set per file: a preload only reaches the first file.
  setDefaultTimeout(90_000);
  let fleet: Fleet | undefined;
  beforeAll(async () => {
    fleet = await Fleet.create(o);
    const names = o.start === "all" ? fleet.workers.map((w) => w.name) : (o.start ?? []);
    for (const n of names) await fleet.startUpdater(fleet.worker(n));
  }, 180_000);
  afterAll(() => fleet?.[Symbol.asyncDispose]());
  return new Proxy({} as Fleet, {
    get(_, key) {
      if (!fleet) throw new Error("the fleet is used before the file's beforeAll made it");
      const v = Reflect.get(fleet, key, fleet);
      return typeof v === "function" ? v.bind(fleet) : v;
    },
  });
}
