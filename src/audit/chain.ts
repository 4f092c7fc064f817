import { createHmac, type KeyObject } from "node:crypto";
import { type AuditEntry, type AuditRecord, GENESIS_HASH } from "../keystore/audit-types.js";

/**
 * The chain hash of a record: HMAC-SHA256, under the audit chain key, of the
 * previous record's hash, the record's position and every field, serialised
 * as a JSON array in a fixed order. Keyed, so that someone who can write the
 * store but lacks the root key cannot forge a consistent chain; chained, so
 * that changing, removing or reordering a record breaks every later link.
 */
export function chainHash(
  chainKey: KeyObject,
  prevHash: string,
  seq: number,
  entry: AuditEntry,
): string {
  const pairs = Object.entries(entry.context);
  const context = pairs.length < 2 ? pairs : pairs.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const fields = [
    seq,
    prevHash,
    entry.time,
    entry.requestId,
    entry.protocol,
    entry.projectId,
    entry.principal,
    entry.operation,
    entry.keyId,
    entry.sequence,
    entry.outcome,
    entry.latencyUs,
    context,
  ];
  return createHmac("sha256", chainKey).update(JSON.stringify(fields)).digest("hex");
}

export type ChainBreak =
  | { readonly seq: number; readonly reason: "gap"; readonly expectedSeq: number }
  | { readonly seq: number; readonly reason: "link" }
  | { readonly seq: number; readonly reason: "hash" };

/**
 * Walks records in seq order and reports the first one that breaks the
 * chain: a missing seq (a deleted record), a prevHash that is not the
 * previous record's hash (deleted or reordered), or a hash that does not
 * match the record's content (changed).
 */
export class ChainVerifier {
  private expectedSeq = 1;
  private prevHash = GENESIS_HASH;

  constructor(private readonly chainKey: KeyObject) {}

  /** Undefined while the chain holds. */
  check(record: AuditRecord): ChainBreak | undefined {
    if (record.seq !== this.expectedSeq) {
      return { seq: record.seq, reason: "gap", expectedSeq: this.expectedSeq };
    }
    if (record.prevHash !== this.prevHash) return { seq: record.seq, reason: "link" };
    if (chainHash(this.chainKey, record.prevHash, record.seq, record) !== record.hash) {
      return { seq: record.seq, reason: "hash" };
    }
    this.expectedSeq++;
    this.prevHash = record.hash;
    return undefined;
  }

  /** How many records held so far. */
  get verified(): number {
    return this.expectedSeq - 1;
  }
}

export function describeBreak(broken: ChainBreak): string {
  switch (broken.reason) {
    case "gap":
      return `record ${broken.expectedSeq} is missing (next present is ${broken.seq}): records were deleted`;
    case "link":
      return `record ${broken.seq} does not follow the record before it: records were deleted or reordered`;
    case "hash":
      return `record ${broken.seq} does not match its hash: it was changed`;
  }
}
