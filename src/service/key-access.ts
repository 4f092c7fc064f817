import { Code } from "@connectrpc/connect";
import { kmsError } from "../errors/kms-error.js";
import type { KeyRing } from "../keys/key-ring.js";
import {
  AliasTakenError,
  type KeyPatch,
  type KeyRecord,
  type KeyStore,
} from "../keystore/types.js";

/** Reading and changing a project's keys, as the management RPCs do. */
export interface KeyAccess {
  /** The key; KMS.0207 when the project has no such key. */
  existingKey(projectId: string, keyId: string): Promise<KeyRecord>;
  /**
   * Applies `decide` in the store's transaction (see KeyStore.updateKey)
   * and refreshes this process's key cache; KMS.0207 for a missing key.
   */
  changeKey(
    projectId: string,
    keyId: string,
    decide: (key: KeyRecord) => KeyPatch,
  ): Promise<KeyRecord>;
}

export function keyNotFound(keyId: string) {
  return kmsError("KMS.0207", `key ${keyId} does not exist`);
}

/** An alias clash from the store, as the API answers it; anything else unchanged. */
export function aliasError(error: unknown): unknown {
  return error instanceof AliasTakenError
    ? kmsError("KMS.0308", error.message, { connectCode: Code.AlreadyExists })
    : error;
}

export function createKeyAccess(store: KeyStore, keyRing: KeyRing): KeyAccess {
  return {
    async existingKey(projectId, keyId) {
      const key = await store.getKey(projectId, keyId);
      if (key === undefined) throw keyNotFound(keyId);
      return key;
    },

    async changeKey(projectId, keyId, decide) {
      let key: KeyRecord | undefined;
      try {
        key = await store.updateKey(projectId, keyId, decide);
      } catch (error) {
        throw aliasError(error);
      }
      if (key === undefined) throw keyNotFound(keyId);
      keyRing.update(key);
      return key;
    },
  };
}
