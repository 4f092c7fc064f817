import { performance } from "node:perf_hooks";

/**
 * Microseconds from `since` (a performance.now() reading) to now, as an
 * audit record's latency: at least 1, since no request takes no time and a
 * 0 would read as "not measured".
 */
export function latencyUs(since: number): number {
  return Math.max(1, Math.round((performance.now() - since) * 1000));
}
