/**
 * The store's contract for the audit trail: an append-only, hash-chained
 * sequence of records, one per request. Records hold no secrets (no
 * plaintext, ciphertext, key material, secret keys or tokens).
 */

/** The prevHash of the first record. */
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

export interface AuditRecord extends AuditEntry {
  /** Position in the trail, from 1, without gaps. */
  readonly seq: number;
  /** The previous record's hash (the genesis value for seq 1). */
  readonly prevHash: string;
  /** Chain hash over prevHash and this record (see src/audit/chain.ts). */
  readonly hash: string;
}

export interface AuditHead {
  readonly seq: number;
  readonly hash: string;
}

export interface AuditQuery {
  readonly projectId?: string;
  /** Only records at or after this time (epoch ms). */
  readonly since?: number;
  /** Only records after this seq. */
  readonly afterSeq?: number;
  readonly limit: number;
}

export interface AuditStore {
  /**
   * Appends entries in order, in one transaction that reads the current head
   * itself, so that processes appending to the same store keep one unbroken
   * chain. `chain(prev, seq, entry)` computes each record's hash.
   */
  appendAudit(
    entries: readonly AuditEntry[],
    chain: (prevHash: string, seq: number, entry: AuditEntry) => string,
  ): Promise<void>;
  /** Records in seq order. */
  readAudit(query: AuditQuery): Promise<AuditRecord[]>;
  /** The newest record's seq and hash; undefined for an empty trail. */
  auditHead(): Promise<AuditHead | undefined>;
}
