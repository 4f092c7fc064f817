import { createHmac, createSecretKey, type KeyObject, randomBytes } from "node:crypto";
import { unwrapSecret, WRAP_IV_LENGTH, wrapSecret } from "../crypto/key-wrap.js";
import type { RootKey } from "../keys/root-key.js";
import type { KeyStore } from "../keystore/types.js";

const CHAIN_KEY_META = "audit_chain_key";
const BINDING = { purpose: "audit key", id: "chain", version: 1 } as const;

export interface AuditKeys {
  /** Keys the chain hashes (src/audit/chain.ts). */
  readonly chain: KeyObject;
  /** Keys the hashes of encryption context values in audit records. */
  readonly contextValues: KeyObject;
}

/**
 * The audit trail's keys: one random key, created with the store and kept
 * wrapped under the root key in the store's metadata (so root key rotation
 * re-wraps it and the chain stays verifiable), and a key derived from it.
 */
export async function loadAuditKeys(store: KeyStore, rootKey: RootKey): Promise<AuditKeys> {
  const fresh = wrapSecret(rootKey.bytes, BINDING, randomBytes(32), randomBytes(WRAP_IV_LENGTH));
  // Whoever creates the store first wins; everyone else reads that key.
  const stored = await store.initMeta(CHAIN_KEY_META, fresh.toString("base64"));
  const chain = unwrapSecret(rootKey.bytes, BINDING, Buffer.from(stored, "base64"));
  const contextValues = createHmac("sha256", chain).update("kmsd audit context values v1").digest();
  return { chain: createSecretKey(chain), contextValues: createSecretKey(contextValues) };
}

/** What the audit trail records of an encryption context value: 128 bits of its HMAC. */
export function contextValueHash(keys: AuditKeys, value: string): string {
  return createHmac("sha256", keys.contextValues).update(value).digest("hex").slice(0, 32);
}
