/**
 * When a key with rotation enabled is next due: the rule every backend and
 * the service share, so the schedule is the same whoever computes it.
 */

export const DAY_MS = 24 * 60 * 60 * 1000;

/** Huawei's default rotation_interval, in days (the proto bounds it to 30..365). */
export const DEFAULT_ROTATION_INTERVAL_DAYS = 365;

/** A rotation (or the enabling of rotation) at `from` makes the key due `intervalDays` later. */
export function nextRotationAt(from: number, intervalDays: number): number {
  return from + intervalDays * DAY_MS;
}

/** Where the schedule that ends at `nextAt` started: the last rotation, or the enabling of rotation. */
export function rotationScheduleStart(nextAt: number, intervalDays: number): number {
  return nextAt - intervalDays * DAY_MS;
}
