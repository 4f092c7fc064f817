/**
 * Loads many keys into a store for the benchmark, through the store API
 * (the same records the service writes), without an fsync per key.
 */
import { randomUUID } from "node:crypto";
import { rootKeyId } from "../src/crypto/key-wrap.js";
import { createKeyVersion } from "../src/keys/key-version-factory.js";
import { decodeRootKey } from "../src/keys/root-key.js";
import { openSqliteStore } from "../src/keystore/sqlite/sqlite-store.js";
import { KeyState } from "../src/keystore/types.js";

export async function seedKeys(
  dataDir: string,
  rootKeyBase64: string,
  projectId: string,
  count: number,
): Promise<string[]> {
  const bytes = decodeRootKey(rootKeyBase64, "the benchmark root key");
  const rootKey = { bytes, id: rootKeyId(bytes) };
  const store = await openSqliteStore({ dataDir, durability: "bulk" });
  const keyIds: string[] = [];
  try {
    const now = Date.now();
    for (let i = 0; i < count; i++) {
      const keyId = randomUUID();
      await store.createKey(
        {
          keyId,
          projectId,
          alias: `spread-${i}`,
          description: "",
          keySpec: "AES_256",
          keyUsage: "ENCRYPT_DECRYPT",
          origin: "kms",
          enterpriseProjectId: "0",
          state: KeyState.Enabled,
          createdAt: now,
          deletionAt: null,
          primaryVersion: 1,
        },
        createKeyVersion(rootKey, keyId, 1, now),
      );
      keyIds.push(keyId);
    }
  } finally {
    await store.close();
  }
  return keyIds;
}
