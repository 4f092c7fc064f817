import { randomBytes } from "node:crypto";
import { MATERIAL_LENGTH, WRAP_IV_LENGTH, wrapKeyMaterial } from "../crypto/key-wrap.js";
import type { KeyVersionRecord, MakeKeyVersion } from "../keystore/types.js";
import type { RootKey } from "./root-key.js";

/**
 * Fresh key material for a key version, wrapped under the root key. The
 * clear material exists only inside this call.
 */
export function createKeyVersion(
  rootKey: RootKey,
  keyId: string,
  version: number,
  now: number,
): KeyVersionRecord {
  const material = randomBytes(MATERIAL_LENGTH);
  try {
    const wrappedMaterial = wrapKeyMaterial(
      rootKey.bytes,
      { keyId, version },
      material,
      randomBytes(WRAP_IV_LENGTH),
    );
    return { keyId, version, wrappedMaterial, rootKeyId: rootKey.id, createdAt: now };
  } finally {
    material.fill(0);
  }
}

/** createKeyVersion under this root key, in the form the store's rotations call. */
export function keyVersionMaker(rootKey: RootKey): MakeKeyVersion {
  return (keyId, version, now) => createKeyVersion(rootKey, keyId, version, now);
}
