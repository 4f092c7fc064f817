import { randomBytes } from "node:crypto";
import { auditKeyRootKeyId, rewrapAuditKey } from "../audit/audit-keys.js";
import {
  credentialSecretBinding,
  unwrapKeyMaterial,
  unwrapSecret,
  WRAP_IV_LENGTH,
  wrapKeyMaterial,
  wrapSecret,
} from "../crypto/key-wrap.js";
import type { Store } from "../keystore/types.js";
import {
  RETIRED_ROOT_KEYS_META,
  ROOT_KEY_META,
  type RootKeySet,
  retiredRootKeys,
} from "./root-key.js";

/**
 * Root key rotation (docs/root-key.md): every wrapped secret in the store
 * (key versions' material, credentials' secret keys, the audit chain key)
 * is rewrapped under the primary root key, then the store's root key check
 * value names the primary.
 *
 * Crash-safe at every step: each record is rewrapped by one compare-and-set
 * statement, so it is always wrapped whole under the old or the new key and
 * says which; the check value changes only once nothing is left under
 * another key. Killed at any point, running it again finishes the work.
 * Servers keep serving throughout: they hold both keys and pick one by the
 * fingerprint each record carries; the material inside never changes, so
 * their caches stay valid.
 */

export interface RotationReport {
  readonly root_key_id: string;
  /** The store's root key before, or the primary's when it already was. */
  readonly previous_store_root_key_id: string | undefined;
  readonly key_versions_rewrapped: number;
  readonly credentials_rewrapped: number;
  readonly audit_key_rewrapped: boolean;
  readonly retired_root_key_ids: readonly string[];
}

export interface RotationOptions {
  /** Records read and rewrapped per batch. */
  readonly batchSize: number;
  /** Told after each batch (progress for the operator; never key material). */
  readonly onProgress?: (progress: { keyVersions: number; credentials: number }) => void;
}

/** A batch in which nothing could be rewrapped, this many times in a row, means a fight. */
const STALLED_BATCHES = 3;

export async function rotateRootKey(
  store: Store,
  keys: RootKeySet,
  options: RotationOptions,
): Promise<RotationReport> {
  const target = keys.primary.id;
  const storeRootKeyId = await store.getMeta(ROOT_KEY_META);
  // First of all: no server may start again with an old key as its primary
  // (it would wrap new records under a key about to be dropped).
  await retire(store, [
    ...keys.previous.map((key) => key.id),
    ...(storeRootKeyId !== undefined && storeRootKeyId !== target ? [storeRootKeyId] : []),
  ]);
  const counts = { keyVersions: 0, credentials: 0 };
  await rewrapAll(store, keys, options, counts);
  const auditKeyRewrapped = await rewrapAuditKey(store, keys);
  await adoptPrimary(store, target);
  // Records a server still running with the old primary wrapped meanwhile.
  await rewrapAll(store, keys, options, counts);
  return {
    root_key_id: target,
    previous_store_root_key_id: storeRootKeyId,
    key_versions_rewrapped: counts.keyVersions,
    credentials_rewrapped: counts.credentials,
    audit_key_rewrapped: auditKeyRewrapped,
    retired_root_key_ids: await retiredRootKeys(store),
  };
}

async function rewrapAll(
  store: Store,
  keys: RootKeySet,
  options: RotationOptions,
  counts: { keyVersions: number; credentials: number },
): Promise<void> {
  await inBatches(
    () => store.listVersionsNotWrappedBy(keys.primary.id, options.batchSize),
    async (version) => {
      const binding = { keyId: version.keyId, version: version.version };
      const from = keys.forRecord(
        version.rootKeyId,
        `key material of ${version.keyId} v${version.version}`,
      );
      const rewrapped = rewrapWiping(
        () => unwrapKeyMaterial(from.bytes, binding, version.wrappedMaterial),
        (material) =>
          wrapKeyMaterial(keys.primary.bytes, binding, material, randomBytes(WRAP_IV_LENGTH)),
      );
      const done = await store.rewrapKeyVersion(
        version.keyId,
        version.version,
        version.rootKeyId,
        rewrapped,
        keys.primary.id,
      );
      if (done) counts.keyVersions++;
      return done;
    },
    () => options.onProgress?.(counts),
  );
  await inBatches(
    () => store.listCredentialsNotWrappedBy(keys.primary.id, options.batchSize),
    async (credential) => {
      const binding = credentialSecretBinding(credential.accessKey);
      const from = keys.forRecord(credential.rootKeyId, `credential ${credential.accessKey}`);
      const rewrapped = rewrapWiping(
        () => unwrapSecret(from.bytes, binding, credential.wrappedSecret),
        (secret) => wrapSecret(keys.primary.bytes, binding, secret, randomBytes(WRAP_IV_LENGTH)),
      );
      const done = await store.rewrapCredential(
        credential.accessKey,
        credential.rootKeyId,
        rewrapped,
        keys.primary.id,
      );
      if (done) counts.credentials++;
      return done;
    },
    () => options.onProgress?.(counts),
  );
}

/** Unwraps a secret and wraps it again; the clear copy is wiped whatever happens. */
function rewrapWiping(unwrap: () => Buffer, wrap: (secret: Buffer) => Buffer): Buffer {
  const secret = unwrap();
  try {
    return wrap(secret);
  } finally {
    secret.fill(0);
  }
}

/**
 * Lists a batch, rewraps each record in it, until a list comes back empty.
 * A record another rotation rewrapped first is simply skipped (its
 * compare-and-set fails); batches where every record is skipped again and
 * again mean someone keeps rewrapping to a different key.
 */
async function inBatches<T>(
  list: () => Promise<T[]>,
  rewrap: (record: T) => Promise<boolean>,
  afterBatch: () => void,
): Promise<void> {
  let stalled = 0;
  for (;;) {
    const batch = await list();
    if (batch.length === 0) return;
    let done = 0;
    for (const record of batch) if (await rewrap(record)) done++;
    afterBatch();
    stalled = done === 0 ? stalled + 1 : 0;
    if (stalled === STALLED_BATCHES) {
      throw new Error(
        "records keep changing root key under this rotation: is another rotation to a different root key running?",
      );
    }
  }
}

/** Adds the fingerprints to the retired list (compare-and-set, so none is lost). */
async function retire(store: Store, ids: readonly string[]): Promise<void> {
  for (;;) {
    const current = await store.initMeta(RETIRED_ROOT_KEYS_META, "");
    const retired = current.split(" ").filter(Boolean);
    const added = ids.filter((id) => !retired.includes(id));
    if (added.length === 0) return;
    const next = [...retired, ...new Set(added)].join(" ");
    if (await store.replaceMeta(RETIRED_ROOT_KEYS_META, current, next)) return;
  }
}

/**
 * Makes the primary the store's root key (the check value every process
 * compares its keys with at start), once everything is wrapped under it.
 */
async function adoptPrimary(store: Store, target: string): Promise<void> {
  for (;;) {
    const current = await store.getMeta(ROOT_KEY_META);
    if (current === target) return;
    if (current === undefined) throw new Error("the store has no root key check value");
    if (await store.replaceMeta(ROOT_KEY_META, current, target)) return;
  }
}

/** How far a rotation to the primary root key has come: `kmsd root-key status`. */
export interface RootKeyStatus {
  readonly store_root_key_id: string | undefined;
  readonly primary_root_key_id: string;
  readonly previous_root_key_ids: readonly string[];
  readonly retired_root_key_ids: readonly string[];
  /** Records still wrapped under another root key, by that key's fingerprint. */
  readonly key_versions_not_under_primary: Readonly<Record<string, number>>;
  readonly credentials_not_under_primary: Readonly<Record<string, number>>;
  /** The configured root key the audit chain key unwraps under (null: none of them). */
  readonly audit_key_root_key_id: string | null;
  /** Set when there were more records than counted (the counts are then lower bounds). */
  readonly counts_truncated: boolean;
  /** Everything is under the primary and the store names it: previous keys can be dropped. */
  readonly complete: boolean;
}

export async function rootKeyStatus(
  store: Store,
  keys: RootKeySet,
  limit: number,
): Promise<RootKeyStatus> {
  const versions = await store.listVersionsNotWrappedBy(keys.primary.id, limit);
  const credentials = await store.listCredentialsNotWrappedBy(keys.primary.id, limit);
  const storeRootKeyId = await store.getMeta(ROOT_KEY_META);
  const auditKey = (await auditKeyRootKeyId(store, keys)) ?? null;
  return {
    store_root_key_id: storeRootKeyId,
    primary_root_key_id: keys.primary.id,
    previous_root_key_ids: keys.previous.map((key) => key.id),
    retired_root_key_ids: await retiredRootKeys(store),
    key_versions_not_under_primary: countBy(versions, (v) => v.rootKeyId),
    credentials_not_under_primary: countBy(credentials, (c) => c.rootKeyId),
    audit_key_root_key_id: auditKey,
    counts_truncated: versions.length === limit || credentials.length === limit,
    complete:
      versions.length === 0 &&
      credentials.length === 0 &&
      auditKey === keys.primary.id &&
      storeRootKeyId === keys.primary.id,
  };
}

function countBy<T>(records: readonly T[], key: (record: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const record of records) counts[key(record)] = (counts[key(record)] ?? 0) + 1;
  return counts;
}
