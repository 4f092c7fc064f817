/**
 * The parts of appendAudit and readAudit both SQL backends share: checking
 * that an append continues the trail, turning it into INSERT parameters
 * (PostgreSQL's row per record), and finding where a time filter starts.
 */
import type { AuditBuild, AuditHead, AuditIndexProblem, StoredAuditRecord } from "./audit-types.js";
import { pushAuditValues } from "./rows.js";

/** The newest row, as the append reads it under the write lock. */
export interface AuditHeadRow {
  seq: number;
  seal: string | null;
  time_bound: number;
}

export function toAuditHead(row: AuditHeadRow): AuditHead {
  return { seq: row.seq, seal: row.seal ?? undefined };
}

/**
 * Runs `build` on the head and returns what it made. Throws, before
 * anything is written, when the records do not continue the head's seq.
 */
export function continuingRecords(
  head: AuditHeadRow | undefined,
  build: AuditBuild,
): readonly StoredAuditRecord[] {
  const records = build(head === undefined ? undefined : toAuditHead(head));
  let expectedSeq = (head?.seq ?? 0) + 1;
  for (const record of records) {
    if (record.seq !== expectedSeq++) {
      throw new Error(
        `audit record ${record.seq} does not continue the trail at ${expectedSeq - 1}`,
      );
    }
  }
  return records;
}

/**
 * Runs `build` on the head and returns the INSERT parameters of what it
 * made, `rowsPerStatement` records per list, for a table of one row per
 * record. Each row gets its time_bound: the highest time up to and
 * including it, which never decreases along seq (see firstSeqSince).
 */
export function auditInsertValues(
  head: AuditHeadRow | undefined,
  build: AuditBuild,
  rowsPerStatement: number,
): unknown[][] {
  const records = continuingRecords(head, build);
  const statements: unknown[][] = [];
  const timeBound = new RunningTimeBound(head?.time_bound ?? Number.MIN_SAFE_INTEGER);
  for (let from = 0; from < records.length; from += rowsPerStatement) {
    const values: unknown[] = [];
    for (const record of records.slice(from, from + rowsPerStatement)) {
      pushAuditValues(values, record, timeBound.add(record.time));
    }
    statements.push(values);
  }
  return statements;
}

/**
 * What the store knows of the records from a seq on: the seq of the first
 * record (or of the last record of the first stored run of records) at or
 * after it, and the highest time of any record up to that one.
 */
export type TimeBoundProbe = (
  seq: number,
) =>
  | { seq: number; time_bound: number }
  | undefined
  | Promise<{ seq: number; time_bound: number } | undefined>;

/**
 * The lowest seq after `afterSeq` whose record may have a time at or after
 * `since`: every record before it has time_bound, hence time, below `since`.
 * time_bound never decreases along seq, so a bisection over seq finds it in
 * about log2(records) probes, with no index on time to pay for on every
 * append (records are appended in the order requests finish, so time alone
 * is not ordered). Returns `headSeq + 1` when no record can match. Where
 * the store keeps runs of records, the answer may be the start of the run
 * holding the first match: the caller filters records by time anyway.
 */
export async function firstSeqSince(
  since: number,
  afterSeq: number,
  headSeq: number,
  probe: TimeBoundProbe,
): Promise<number> {
  let low = afterSeq + 1;
  let high = headSeq + 1;
  while (low < high) {
    const middle = Math.floor((low + high) / 2);
    const found = await probe(middle);
    if (found === undefined || found.time_bound >= since) high = middle;
    // Every record up to found.seq is too early.
    else low = found.seq + 1;
  }
  return low;
}

/**
 * The highest time so far along seq: what a stored time bound is written
 * as, and what verify checks a stored one against. firstSeqSince skips only
 * records before `since` as long as each stored bound is at least this
 * (higher is allowed: a read then only starts earlier). A NaN, from a text
 * without a time copied as it is, counts for nothing.
 */
export class RunningTimeBound {
  #highest: number;

  constructor(start = Number.NEGATIVE_INFINITY) {
    this.#highest = start;
  }

  /** Takes in a record's time; returns the bound up to and including it. */
  add(time: number): number {
    if (time > this.#highest) this.#highest = time;
    return this.#highest;
  }

  /** A problem when `stored`, the bound kept for the records up to `seq`, is below one of their times. */
  problemWith(stored: number, seq: number): AuditIndexProblem | undefined {
    if (stored >= this.#highest) return undefined;
    return {
      seq,
      problem: `the time bound stored for the records up to ${seq} (${stored}) is below the time of one of them (${this.#highest}): reads by time would miss records`,
    };
  }
}
