/**
 * Loads many keys into a store for the benchmark, through the store API
 * (the same records the service writes), without an fsync per key.
 */
import { rootKeyId } from "../src/crypto/key-wrap.js";
import { createKeyVersion } from "../src/keys/key-version-factory.js";
import { decodeRootKey } from "../src/keys/root-key.js";
import { openSqliteStore } from "../src/keystore/sqlite/sqlite-store.js";
import { newKeyRecord } from "../src/service/new-key.js";

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
      const key = newKeyRecord({
        projectId,
        alias: `spread-${i}`,
        description: "",
        enterpriseProjectId: "0",
        createdAt: now,
      });
      await store.createKey(key, createKeyVersion(rootKey, key.keyId, 1, now));
      keyIds.push(key.keyId);
    }
  } finally {
    await store.close();
  }
  return keyIds;
}
