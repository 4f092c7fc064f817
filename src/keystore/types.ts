/**
 * The key store contract. Every backend (SQLite now, PostgreSQL later)
 * implements it; the service and the CLI only ever see this interface.
 *
 * The interface is async although better-sqlite3 is synchronous: a network
 * database cannot answer synchronously, and the contract must fit both.
 *
 * Key material never crosses this boundary in the clear: a version carries
 * only its material wrapped under the root key (see src/crypto/key-wrap.ts).
 */

import type { AccessStore } from "./access-types.js";
import type { AuditStore } from "./audit-types.js";
import type { TransferStore } from "./transfer-types.js";

/** Huawei's key_state values. */
export const KeyState = {
  Enabled: "2",
  Disabled: "3",
  PendingDeletion: "4",
} as const;
export type KeyState = (typeof KeyState)[keyof typeof KeyState];

export interface KeyRecord {
  readonly keyId: string;
  readonly projectId: string;
  readonly alias: string;
  readonly description: string;
  readonly keySpec: string;
  readonly keyUsage: string;
  readonly origin: string;
  readonly enterpriseProjectId: string;
  readonly state: KeyState;
  /** Epoch milliseconds. */
  readonly createdAt: number;
  /** Epoch milliseconds at which the key is destroyed; null unless pending deletion. */
  readonly deletionAt: number | null;
  /** The version new ciphertexts are made with (the newest one). */
  readonly primaryVersion: number;
  /** Whether the key is rotated every rotationIntervalDays. */
  readonly rotationEnabled: boolean;
  /** 30..365; kept while rotation is disabled. */
  readonly rotationIntervalDays: number;
  /** Epoch milliseconds of the last rotation (automatic or on demand); null if never rotated. */
  readonly lastRotationAt: number | null;
  /** Rotations so far: primaryVersion - 1 for a key kmsd created. */
  readonly rotationCount: number;
  /**
   * Epoch milliseconds from which the key is due for automatic rotation;
   * null exactly when rotation is disabled.
   */
  readonly nextRotationAt: number | null;
}

export interface KeyVersionRecord {
  readonly keyId: string;
  readonly version: number;
  /** The material wrapped under the root key identified by rootKeyId. */
  readonly wrappedMaterial: Uint8Array;
  /** Fingerprint of the root key that wrapped the material. */
  readonly rootKeyId: string;
  /** Epoch milliseconds. */
  readonly createdAt: number;
}

/**
 * The fields of a key that updateKey changes. The version fields
 * (primaryVersion, lastRotationAt, rotationCount) change only by rotation.
 */
export type KeyPatch = Partial<
  Pick<
    KeyRecord,
    | "state"
    | "deletionAt"
    | "alias"
    | "description"
    | "rotationEnabled"
    | "rotationIntervalDays"
    | "nextRotationAt"
  >
>;

/**
 * Makes the material of a key's next version, wrapped under the root key
 * (only the caller holds it). Called inside the store's transaction, so it
 * must be synchronous and must not touch the store.
 */
export type MakeKeyVersion = (keyId: string, version: number, now: number) => KeyVersionRecord;

export interface ListKeysQuery {
  readonly projectId: string;
  /** 1..1000. */
  readonly limit: number;
  /** Opaque position returned as `nextMarker` by the previous page. */
  readonly marker?: string;
  readonly state?: KeyState;
  readonly keySpec?: string;
}

export interface KeyPage {
  readonly keys: KeyRecord[];
  /** Keys matching the query's filters, over all pages. */
  readonly total: number;
  /** Set when more keys follow; pass it back as `marker`. */
  readonly nextMarker?: string;
}

/** What a change-feed entry is about. */
export type ChangeKind = "key" | "credential" | "token";

/**
 * One change to a key, credential or token, as seen by other processes
 * sharing the store (their caches drop the entry it names).
 */
export interface KeyChange {
  readonly seq: number;
  readonly kind: ChangeKind;
  readonly projectId: string;
  /** The key id, access key or token id the change is about. */
  readonly keyId: string;
}

export interface KeyStore {
  /**
   * Creates a key and its first version atomically.
   * @throws AliasTakenError when the project already has a key with this alias.
   */
  createKey(key: KeyRecord, firstVersion: KeyVersionRecord): Promise<void>;

  /** The key, or undefined when it does not exist in that project. */
  getKey(projectId: string, keyId: string): Promise<KeyRecord | undefined>;

  getKeyVersion(keyId: string, version: number): Promise<KeyVersionRecord | undefined>;

  listKeys(query: ListKeysQuery): Promise<KeyPage>;

  /**
   * Reads the key and applies `decide` to it inside one transaction, so that
   * concurrent updates (other requests, other processes) cannot interleave.
   * `decide` is synchronous; whatever it throws aborts the transaction and is
   * rethrown unchanged. Returns the updated key, or undefined when the key
   * does not exist in that project (decide is then not called).
   */
  updateKey(
    projectId: string,
    keyId: string,
    decide: (current: KeyRecord) => KeyPatch,
  ): Promise<KeyRecord | undefined>;

  /**
   * Destroys every key whose deletion date is at or before `now`: its
   * versions (and so its material) and the key itself. Returns their ids.
   */
  destroyDueKeys(now: number): Promise<string[]>;

  /**
   * Rotates one key in one transaction: `check` sees the current key first
   * (whatever it throws aborts and is rethrown unchanged), then the key gets
   * version primaryVersion + 1 from `makeVersion`, which becomes primary;
   * lastRotationAt becomes `now`, rotationCount grows by one and, when
   * rotation is enabled, nextRotationAt becomes now + the interval. Returns
   * the rotated key, or undefined when the key does not exist in that
   * project (check is then not called).
   */
  rotateKey(
    projectId: string,
    keyId: string,
    now: number,
    makeVersion: MakeKeyVersion,
    check?: (current: KeyRecord) => void,
  ): Promise<KeyRecord | undefined>;

  /**
   * Rotates, as rotateKey does, up to `limit` enabled keys whose rotation is
   * enabled and due (nextRotationAt <= now), most overdue first, in one
   * transaction that selects and rotates them together: when several
   * processes sweep at once, each due rotation happens exactly once.
   * Returns the rotated keys.
   */
  rotateDueKeys(now: number, makeVersion: MakeKeyVersion, limit: number): Promise<KeyRecord[]>;

  /**
   * Changes made after `afterSeq`, oldest first; every mutation of a key,
   * credential or token appends one. Lets each process drop cached entries
   * another process changed.
   */
  changesSince(afterSeq: number): Promise<KeyChange[]>;

  /** The newest change's seq (0 for none): where a new watcher starts. */
  latestChangeSeq(): Promise<number>;

  /**
   * Calls `wake` soon after a change is recorded, by this process or another
   * (PostgreSQL: LISTEN/NOTIFY), so a watcher need not wait for its next
   * poll; returns a function that stops it. Optional, and only a hint: a
   * store without it (SQLite), or one whose notifications are interrupted,
   * leaves watchers to their polling, which must go on regardless.
   */
  onChangeRecorded?(wake: () => void): () => void;

  /** A value kept in the store's metadata (e.g. the root key's check value). */
  getMeta(name: string): Promise<string | undefined>;
  setMeta(name: string, value: string): Promise<void>;
  /**
   * Stores the value unless the name already has one, atomically (processes
   * racing to initialise a new store agree on one value). Resolves to the
   * value kept: the existing one, or this one.
   */
  initMeta(name: string, value: string): Promise<string>;

  /**
   * Sets `name` to `value` only while it holds `expected`; resolves whether
   * it did (compare-and-set). A name without a value is never set.
   */
  replaceMeta(name: string, expected: string, value: string): Promise<boolean>;

  /**
   * Up to `limit` key versions whose material is wrapped under a root key
   * other than `rootKeyId` (root key rotation's work list; any order).
   */
  listVersionsNotWrappedBy(rootKeyId: string, limit: number): Promise<KeyVersionRecord[]>;

  /**
   * Replaces one version's wrapped material and root key id, only while it
   * is still wrapped under `expectedRootKeyId` (compare-and-set, one
   * statement). Resolves false when it was not (already rewrapped, or the
   * version is gone). The material inside is unchanged, so this appends
   * nothing to the change feed: caches holding the unwrapped material stay
   * valid.
   */
  rewrapKeyVersion(
    keyId: string,
    version: number,
    expectedRootKeyId: string,
    wrappedMaterial: Uint8Array,
    rootKeyId: string,
  ): Promise<boolean>;

  /** Cheap round trip proving the store answers (for readiness checks). */
  ping(): Promise<void>;

  close(): Promise<void>;
}

export class AliasTakenError extends Error {
  constructor(readonly alias: string) {
    super(`key_alias ${JSON.stringify(alias)} is already used in this project`);
    this.name = "AliasTakenError";
  }
}

/**
 * Everything kmsd keeps: keys, access credentials and the audit trail, and
 * the whole-store reads and writes `kmsd store copy` moves them with.
 */
export type Store = KeyStore & AccessStore & AuditStore & TransferStore;
