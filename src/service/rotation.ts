import type { ServiceImpl } from "@connectrpc/connect";
import type { KmsService } from "../../gen/kms/v1/kms_pb.js";
import { kmsError } from "../errors/kms-error.js";
import type { KeyRing } from "../keys/key-ring.js";
import { nextRotationAt, rotationScheduleStart } from "../keystore/rotation-schedule.js";
import type { KeyPatch, KeyRecord, KeyStore, MakeKeyVersion } from "../keystore/types.js";
import { type KeyAccess, keyNotFound } from "./key-access.js";
import { assertNotPendingDeletion, assertUsable } from "./key-states.js";

type RotationHandlers = Pick<
  ServiceImpl<typeof KmsService>,
  | "enableKeyRotation"
  | "disableKeyRotation"
  | "getKeyRotationStatus"
  | "updateKeyRotationInterval"
  | "rotateOnDemand"
>;

export interface RotationDeps {
  readonly keys: KeyAccess;
  readonly store: KeyStore;
  readonly keyRing: KeyRing;
  readonly makeVersion: MakeKeyVersion;
  readonly now: () => number;
}

/**
 * Rotation settings are key management: they may change on an enabled or
 * a disabled key, not on one pending deletion. The rotations themselves
 * (automatic or on demand) only happen to enabled keys.
 */
export function enableRotation(now: number) {
  return (key: KeyRecord): KeyPatch => {
    assertNotPendingDeletion(key);
    // Already on: the running schedule is kept.
    if (key.rotationEnabled) return {};
    return { rotationEnabled: true, nextRotationAt: nextRotationAt(now, key.rotationIntervalDays) };
  };
}

export function disableRotation(key: KeyRecord): KeyPatch {
  assertNotPendingDeletion(key);
  return key.rotationEnabled ? { rotationEnabled: false, nextRotationAt: null } : {};
}

/**
 * A new interval re-times the running schedule: the next rotation is due
 * `days` after the last one (or after rotation was enabled), at once if
 * that has passed.
 */
export function changeRotationInterval(days: number) {
  return (key: KeyRecord): KeyPatch => {
    assertNotPendingDeletion(key);
    if (!key.rotationEnabled || key.nextRotationAt === null) {
      throw kmsError(
        "KMS.0313",
        `rotation is not enabled for key ${key.keyId}: enable it (enable-key-rotation) before changing its interval`,
      );
    }
    const from = rotationScheduleStart(key.nextRotationAt, key.rotationIntervalDays);
    return { rotationIntervalDays: days, nextRotationAt: nextRotationAt(from, days) };
  };
}

export function rotationHandlers(deps: RotationDeps): RotationHandlers {
  const { keys, store, keyRing, makeVersion, now } = deps;
  return {
    async enableKeyRotation(request) {
      await keys.changeKey(request.projectId, request.keyId, enableRotation(now()));
      return {};
    },

    async disableKeyRotation(request) {
      await keys.changeKey(request.projectId, request.keyId, disableRotation);
      return {};
    },

    async getKeyRotationStatus(request) {
      const key = await keys.existingKey(request.projectId, request.keyId);
      return {
        keyRotationEnabled: key.rotationEnabled,
        rotationInterval: key.rotationIntervalDays,
        lastRotationTime: key.lastRotationAt === null ? "" : String(key.lastRotationAt),
        numberOfRotations: key.rotationCount,
      };
    },

    async updateKeyRotationInterval(request) {
      const decide = changeRotationInterval(request.rotationInterval);
      await keys.changeKey(request.projectId, request.keyId, decide);
      return {};
    },

    async rotateOnDemand(request) {
      const { projectId, keyId } = request;
      const key = await store.rotateKey(projectId, keyId, now(), makeVersion, assertUsable);
      if (key === undefined) throw keyNotFound(keyId);
      keyRing.update(key);
      return {};
    },
  };
}
