/**
 * The store's contract for the audit trail: an append-only, hash-chained
 * sequence of records, one per request. Records hold no secrets (no
 * plaintext, ciphertext, key material, secret keys or tokens).
 */

/** What the first record, or the first append, chains from. */
export const GENESIS_HASH = "0".repeat(64);

/**
 * The context of an entry whose request bound none (most of them): one
 * shared object, frozen, instead of a new empty one per request.
 */
export const NO_CONTEXT: Readonly<Record<string, string>> = Object.freeze(Object.create(null));

export interface AuditEntry {
  /** Epoch milliseconds when the request arrived. */
  readonly time: number;
  readonly requestId: string;
  /** "grpc", "grpc-web", "connect", "rest" or "cli". */
  readonly protocol: string;
  /** The project the request addressed ("" when it named none). */
  readonly projectId: string;
  /** Access key, "token:<token id>", "cli:<user>", or "" when unauthenticated. */
  readonly principal: string;
  /** The RPC name (e.g. "EncryptData") or, when no RPC was reached, the HTTP method and path. */
  readonly operation: string;
  readonly keyId: string;
  readonly sequence: string;
  /** "OK" or the Huawei error code answered. */
  readonly outcome: string;
  readonly latencyUs: number;
  /** Encryption context keys, each with an HMAC of its value (never the value). */
  readonly context: Readonly<Record<string, string>>;
}

/**
 * How a record is protected. 1: a record from before format 2 (schema
 * migrations turned its columns into `text`), carrying its own chain hash as
 * its seal. 2: sealed with the other records of its append: see
 * src/audit/chain.ts.
 */
export type AuditFormat = 1 | 2;

/** A record as the store keeps it. */
export interface StoredAuditRecord {
  /** Position in the trail, from 1, without gaps. */
  readonly seq: number;
  /** The entry's time and project again, for queries; `text` is authoritative. */
  readonly time: number;
  readonly projectId: string;
  /** The entry as a JSON object; in format 2 the exact text its seal covers. */
  readonly text: string;
  /** Hex HMAC; on the last record of every append (format 2) and on every format 1 record. */
  readonly seal: string | undefined;
  readonly format: AuditFormat;
}

/** A stored record with its entry read out of its text. */
export interface AuditRecord extends AuditEntry, StoredAuditRecord {}

export interface AuditHead {
  readonly seq: number;
  /** The newest record's seal (undefined only if rows were added behind kmsd's back). */
  readonly seal: string | undefined;
}

export interface AuditQuery {
  readonly projectId?: string;
  /** Only records at or after this time (epoch ms). */
  readonly since?: number;
  /** Only records after this seq. */
  readonly afterSeq?: number;
  readonly limit: number;
}

export interface AuditIndexProblem {
  /** The first record a read by project or time could miss. */
  readonly seq: number;
  readonly problem: string;
}

/** Makes the records of one append from the head it continues (see appendAudit). */
export type AuditBuild = (head: AuditHead | undefined) => readonly StoredAuditRecord[];

export interface AuditStore {
  /**
   * Appends the records `build` makes from the current head (undefined for
   * an empty trail), in one transaction that reads the head under the write
   * lock, so that processes appending to the same store keep one unbroken
   * trail. The records must continue the head's seq; when `build` throws,
   * nothing is written and the error is rethrown.
   */
  appendAudit(build: AuditBuild): Promise<void>;
  /** Records in seq order. */
  readAudit(query: AuditQuery): Promise<StoredAuditRecord[]>;
  /** The newest record's seq and seal; undefined for an empty trail. */
  auditHead(): Promise<AuditHead | undefined>;
  /**
   * Where the store's query aids (what reads by project or time rely on
   * beside the sealed texts, which the seals do not cover) first fail to
   * find a record they should; undefined when they hold. For a trail whose
   * chain verified.
   */
  auditIndexProblem(): Promise<AuditIndexProblem | undefined>;
}
