import { createHmac, createSecretKey, type KeyObject, randomBytes } from "node:crypto";
import { UnwrapError, unwrapSecret, WRAP_IV_LENGTH, wrapSecret } from "../crypto/key-wrap.js";
import type { RootKey, RootKeySet } from "../keys/root-key.js";
import type { KeyStore } from "../keystore/types.js";

const CHAIN_KEY_META = "audit_chain_key";
const BINDING = { purpose: "audit key", id: "chain", version: 1 } as const;

export interface AuditKeys {
  /** Keys the seals (src/audit/chain.ts). */
  readonly chain: KeyObject;
  /** Keys the hashes of encryption context values in audit records. */
  readonly contextValues: KeyObject;
}

/**
 * The audit trail's keys: one random key, created with the store and kept
 * wrapped under the root key in the store's metadata (so root key rotation
 * re-wraps it and the chain stays verifiable), and a key derived from it.
 */
export async function loadAuditKeys(store: KeyStore, rootKeys: RootKeySet): Promise<AuditKeys> {
  const fresh = wrapChainKey(rootKeys.primary, randomBytes(32));
  // Whoever creates the store first wins; everyone else reads that key.
  const stored = await store.initMeta(CHAIN_KEY_META, fresh);
  const chain = unwrapChainKey(stored, rootKeys).secret;
  const contextValues = createHmac("sha256", chain).update("kmsd audit context values v1").digest();
  return { chain: createSecretKey(chain), contextValues: createSecretKey(contextValues) };
}

/** The fingerprint of the configured root key the stored chain key unwraps under, if any. */
export async function auditKeyRootKeyId(
  store: KeyStore,
  rootKeys: RootKeySet,
): Promise<string | undefined> {
  const stored = await store.getMeta(CHAIN_KEY_META);
  if (stored === undefined) return undefined;
  try {
    return unwrapChainKey(stored, rootKeys).rootKey.id;
  } catch {
    return undefined;
  }
}

/**
 * Rewraps the stored chain key under the primary root key (compare-and-set
 * on the stored value, so a concurrent rewrap is never overwritten).
 * Resolves whether this call rewrapped it (false: it already was).
 */
export async function rewrapAuditKey(store: KeyStore, rootKeys: RootKeySet): Promise<boolean> {
  for (;;) {
    const stored = await store.getMeta(CHAIN_KEY_META);
    if (stored === undefined) return false;
    const { secret, rootKey } = unwrapChainKey(stored, rootKeys);
    try {
      if (rootKey.id === rootKeys.primary.id) return false;
      const rewrapped = wrapChainKey(rootKeys.primary, secret);
      if (await store.replaceMeta(CHAIN_KEY_META, stored, rewrapped)) return true;
    } finally {
      secret.fill(0);
    }
  }
}

function wrapChainKey(rootKey: RootKey, secret: Buffer): string {
  return wrapSecret(rootKey.bytes, BINDING, secret, randomBytes(WRAP_IV_LENGTH)).toString("base64");
}

/**
 * The stored value does not name its root key (it predates rotation), so
 * each configured key is tried, the primary first: AES-GCM's tag tells a
 * wrong key apart.
 */
function unwrapChainKey(
  stored: string,
  rootKeys: RootKeySet,
): { secret: Buffer; rootKey: RootKey } {
  const wrapped = Buffer.from(stored, "base64");
  for (const rootKey of rootKeys.all) {
    try {
      return { secret: unwrapSecret(rootKey.bytes, BINDING, wrapped), rootKey };
    } catch (error) {
      if (!(error instanceof UnwrapError)) throw error;
    }
  }
  throw new UnwrapError("the audit chain key does not unwrap under any configured root key");
}

/** What the audit trail records of an encryption context value: 128 bits of its HMAC. */
export function contextValueHash(keys: AuditKeys, value: string): string {
  return createHmac("sha256", keys.contextValues).update(value).digest("hex").slice(0, 32);
}
