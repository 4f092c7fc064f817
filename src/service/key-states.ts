import { Code } from "@connectrpc/connect";
import { kmsError } from "../errors/kms-error.js";
import { type KeyPatch, type KeyRecord, KeyState } from "../keystore/types.js";

/**
 * Huawei's key state machine: which state changes are allowed, and the
 * error for using a key in a state that forbids it. Each function decides a
 * change for KeyStore.updateKey, so it runs inside the store's transaction.
 */

const DAY_MS = 24 * 60 * 60 * 1000;

/** Throws unless the key may encrypt and decrypt. */
export function assertUsable(key: Pick<KeyRecord, "keyId" | "state">): void {
  if (key.state === KeyState.Enabled) return;
  if (key.state === KeyState.Disabled) throw kmsError("KMS.0209", `key ${key.keyId} is disabled`);
  throw kmsError("KMS.0210", `key ${key.keyId} is pending deletion and cannot be used`);
}

/** Throws unless the key's settings may change (any state but pending deletion). */
export function assertNotPendingDeletion(key: KeyRecord): void {
  if (key.state === KeyState.PendingDeletion) {
    throw kmsError("KMS.0210", `key ${key.keyId} is pending deletion: cancel the deletion first`);
  }
}

export function enable(key: KeyRecord): KeyPatch {
  assertNotPendingDeletion(key);
  return { state: KeyState.Enabled };
}

export function disable(key: KeyRecord): KeyPatch {
  assertNotPendingDeletion(key);
  return { state: KeyState.Disabled };
}

export function scheduleDeletion(pendingDays: number, now: number) {
  return (key: KeyRecord): KeyPatch => {
    if (key.state === KeyState.PendingDeletion) {
      throw kmsError("KMS.0210", `key ${key.keyId} is already pending deletion`);
    }
    return { state: KeyState.PendingDeletion, deletionAt: now + pendingDays * DAY_MS };
  };
}

export function cancelDeletion(key: KeyRecord): KeyPatch {
  if (key.state !== KeyState.PendingDeletion) {
    throw kmsError("KMS.0308", `key ${key.keyId} is not pending deletion`, {
      connectCode: Code.FailedPrecondition,
    });
  }
  // Huawei returns a cancelled key disabled: enabling it is a separate decision.
  return { state: KeyState.Disabled, deletionAt: null };
}
