/**
 * What `kmsd store copy` needs beyond the service's contract: reading every
 * key, version and metadata entry regardless of project, and writing a key
 * with all its versions exactly as another store holds it. Credentials,
 * tokens and audit records already cross the AccessStore and AuditStore
 * contracts verbatim (audit records through appendAudit, whose `chain`
 * replays the source's hashes).
 */

import type { KeyRecord, KeyVersionRecord } from "./types.js";

export interface MetaEntry {
  readonly name: string;
  readonly value: string;
}

export interface TransferStore {
  /** Keys of every project with a key id after `afterKeyId`, in key id order (byte order). */
  scanKeys(afterKeyId: string, limit: number): Promise<KeyRecord[]>;

  /** Every version of the key, oldest first; empty for an unknown key. */
  listKeyVersions(keyId: string): Promise<KeyVersionRecord[]>;

  /** Every metadata entry, by name (byte order). */
  listMeta(): Promise<MetaEntry[]>;

  /**
   * Inserts the key and all its versions as given (rotation history and
   * state included), in one transaction, recording one change.
   * @throws AliasTakenError when the project already has a key with this alias.
   */
  importKey(key: KeyRecord, versions: readonly KeyVersionRecord[]): Promise<void>;
}
