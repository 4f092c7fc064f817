import { createHmac, type Hmac, type KeyObject } from "node:crypto";
import {
  type AuditEntry,
  type AuditHead,
  GENESIS_HASH,
  type StoredAuditRecord,
} from "../keystore/audit-types.js";
import { auditText, MalformedAuditRecordError, parseAuditRecord } from "./record-text.js";

/**
 * The audit trail is sealed per append: the last record of every append
 * carries an HMAC-SHA256, under the audit chain key, of the seal before it
 * and of each record's seq and text. Keyed, so that someone who can write
 * the store but lacks the root key cannot forge a seal; chained, so that
 * changing, removing or reordering a record breaks its seal and, through
 * it, every later one. One HMAC per append rather than per record: the
 * per-record HMAC of format 1 was the largest part of the trail's cost on
 * the request path (docs/benchmarks.md).
 */
const SEAL_DOMAIN = "kmsd audit seal v2\n";

function sealStart(chainKey: KeyObject, prevSeal: string): Hmac {
  return createHmac("sha256", chainKey).update(`${SEAL_DOMAIN}${prevSeal}\n`);
}

/** A record's part of its seal's input. JSON text holds no raw newline: the split is unambiguous. */
function sealedLine(seq: number, text: string): string {
  return `${seq}\n${text}\n`;
}

export class UnsealedHeadError extends Error {
  constructor(seq: number) {
    super(
      `the audit trail's newest record (${seq}) carries no seal, so nothing can be appended after it: run kmsd audit verify`,
    );
    this.name = "UnsealedHeadError";
  }
}

/**
 * What appendAudit needs to append `entries` after whatever head the store
 * holds: records in format 2, the last one sealed. The texts are made here,
 * before the store takes its write lock.
 */
export function sealEntries(
  chainKey: KeyObject,
  entries: readonly AuditEntry[],
): (head: AuditHead | undefined) => StoredAuditRecord[] {
  const texts = entries.map(auditText);
  return (head) => {
    if (head !== undefined && head.seal === undefined) throw new UnsealedHeadError(head.seq);
    const firstSeq = (head?.seq ?? 0) + 1;
    const last = entries.length - 1;
    const seal =
      last < 0
        ? undefined
        : sealStart(chainKey, head?.seal ?? GENESIS_HASH)
            .update(texts.map((text, i) => sealedLine(firstSeq + i, text)).join(""))
            .digest("hex");
    return entries.map((entry, i) => ({
      seq: firstSeq + i,
      time: entry.time,
      projectId: entry.projectId,
      text: texts[i] as string,
      seal: i === last ? seal : undefined,
      format: 2,
    }));
  };
}

/**
 * A format 1 record's hash: HMAC-SHA256 of the previous record's hash, the
 * record's position and every field, as a JSON array in a fixed order.
 * Only verified now: records are no longer written this way.
 */
export function formatOneHash(
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
  | { readonly seq: number; readonly reason: "malformed"; readonly problem: string }
  | { readonly seq: number; readonly reason: "hash" }
  | { readonly seq: number; readonly reason: "seal"; readonly lastSeq: number }
  | { readonly seq: number; readonly reason: "unsealed" }
  | { readonly seq: number; readonly reason: "format" };

/**
 * Walks records in seq order and reports the first break: a missing seq (a
 * deleted record), a record that is not an entry or whose columns disagree
 * with its text, a format 1 record that does not match its hash, an append
 * that does not match its seal (a record in it changed, removed or moved),
 * or records after the last seal (added behind kmsd's back; see finish()).
 */
export class ChainVerifier {
  private expectedSeq = 1;
  private prevSeal = GENESIS_HASH;
  private sawFormatTwo = false;
  /** The seal being recomputed over the records since the last seal. */
  private open: { readonly firstSeq: number; readonly hmac: Hmac } | undefined;
  private good: StoredAuditRecord | undefined;

  constructor(private readonly chainKey: KeyObject) {}

  /** Undefined while the chain holds (records after the last seal are not verified yet). */
  check(record: StoredAuditRecord): ChainBreak | undefined {
    const seq = record.seq;
    if (seq !== this.expectedSeq) return { seq, reason: "gap", expectedSeq: this.expectedSeq };
    this.expectedSeq++;
    let entry: AuditEntry;
    try {
      entry = parseAuditRecord(record);
    } catch (error) {
      if (!(error instanceof MalformedAuditRecordError)) throw error;
      return { seq, reason: "malformed", problem: error.message };
    }
    if (record.format === 1 && !this.sawFormatTwo) {
      if (formatOneHash(this.chainKey, this.prevSeal, seq, entry) !== record.seal) {
        return { seq, reason: "hash" };
      }
      return this.sealed(record);
    }
    if (record.format !== 2) return { seq, reason: "format" };
    this.sawFormatTwo = true;
    this.open ??= { firstSeq: seq, hmac: sealStart(this.chainKey, this.prevSeal) };
    this.open.hmac.update(sealedLine(seq, record.text));
    if (record.seal === undefined) return undefined;
    const { firstSeq, hmac } = this.open;
    this.open = undefined;
    if (hmac.digest("hex") !== record.seal) return { seq: firstSeq, reason: "seal", lastSeq: seq };
    return this.sealed(record);
  }

  /**
   * Checks a whole trail, read a page at a time, then what follows the last
   * seal; `seen` gets each record that did not break it. The first break,
   * or undefined when the trail holds.
   */
  async checkPages(
    pages: AsyncIterable<readonly StoredAuditRecord[]>,
    seen?: (record: StoredAuditRecord) => void,
  ): Promise<ChainBreak | undefined> {
    for await (const page of pages) {
      for (const record of page) {
        const broken = this.check(record);
        if (broken !== undefined) return broken;
        seen?.(record);
      }
    }
    return this.finish();
  }

  /** After the last record: records since the last seal are a break. */
  finish(): ChainBreak | undefined {
    return this.open === undefined ? undefined : { seq: this.open.firstSeq, reason: "unsealed" };
  }

  private sealed(record: StoredAuditRecord): undefined {
    this.prevSeal = record.seal ?? GENESIS_HASH;
    this.good = record;
    return undefined;
  }

  /** How many records are verified: every one up to the last good seal. */
  get verified(): number {
    return this.good?.seq ?? 0;
  }

  /** The newest record whose seal was verified. */
  get lastGood(): StoredAuditRecord | undefined {
    return this.good;
  }
}

export function describeBreak(broken: ChainBreak): string {
  switch (broken.reason) {
    case "gap":
      return `record ${broken.expectedSeq} is missing (next present is ${broken.seq}): records were deleted`;
    case "malformed":
      return `${broken.problem}: it was changed`;
    case "hash":
      return `record ${broken.seq} does not match its hash: it was changed`;
    case "seal":
      return broken.seq === broken.lastSeq
        ? `record ${broken.seq} does not match its seal: it was changed`
        : `records ${broken.seq} to ${broken.lastSeq} do not match their seal: one of them was changed`;
    case "unsealed":
      return `records from ${broken.seq} on carry no seal: they were not written by kmsd`;
    case "format":
      return `record ${broken.seq} is in an older or unknown format after newer records: it was not written by kmsd`;
  }
}
