/**
 * How updateKey and rotation change a key record: the rules every backend
 * applies inside its own transaction, so that both backends agree exactly.
 */
import { nextRotationAt } from "./rotation-schedule.js";
import type { KeyPatch, KeyRecord, KeyVersionRecord, MakeKeyVersion } from "./types.js";

/** The key with only the patch's present fields replaced. */
export function applyPatch(current: KeyRecord, patch: KeyPatch): KeyRecord {
  return {
    ...current,
    state: patch.state ?? current.state,
    alias: patch.alias ?? current.alias,
    description: patch.description ?? current.description,
    deletionAt: patch.deletionAt !== undefined ? patch.deletionAt : current.deletionAt,
    rotationEnabled: patch.rotationEnabled ?? current.rotationEnabled,
    rotationIntervalDays: patch.rotationIntervalDays ?? current.rotationIntervalDays,
    nextRotationAt:
      patch.nextRotationAt !== undefined ? patch.nextRotationAt : current.nextRotationAt,
  };
}

export function isEmptyPatch(patch: KeyPatch): boolean {
  return Object.values(patch).every((value) => value === undefined);
}

export interface Rotation {
  /** The new version, to store. */
  readonly made: KeyVersionRecord;
  /** The key once rotated: the new version primary, the schedule advanced. */
  readonly rotated: KeyRecord;
}

/**
 * Makes the key's next version and the key as it is once that version is
 * primary. @throws when makeVersion made another key's or version's material.
 */
export function planRotation(
  current: KeyRecord,
  now: number,
  makeVersion: MakeKeyVersion,
): Rotation {
  const version = current.primaryVersion + 1;
  const made = makeVersion(current.keyId, version, now);
  if (made.keyId !== current.keyId || made.version !== version) {
    throw new Error(`makeVersion returned ${made.keyId} v${made.version}, not v${version}`);
  }
  const rotated: KeyRecord = {
    ...current,
    primaryVersion: version,
    lastRotationAt: now,
    rotationCount: current.rotationCount + 1,
    nextRotationAt: current.rotationEnabled
      ? nextRotationAt(now, current.rotationIntervalDays)
      : null,
  };
  return { made, rotated };
}
