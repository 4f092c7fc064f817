/**
 * The parts of appendAudit and readAudit both SQL backends share: turning an
 * append into INSERT parameters, and finding where a time filter starts.
 */
import type { AuditBuild, AuditHead } from "./audit-types.js";
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
 * Runs `build` on the head and returns the INSERT parameters of what it
 * made, `rowsPerStatement` records per list. Each row gets its time_bound:
 * the highest time up to and including it, which never decreases along seq
 * (see firstSeqSince). Throws, before anything is written, when the records
 * do not continue the head's seq.
 */
export function auditInsertValues(
  head: AuditHeadRow | undefined,
  build: AuditBuild,
  rowsPerStatement: number,
): unknown[][] {
  const records = build(head === undefined ? undefined : toAuditHead(head));
  const statements: unknown[][] = [];
  let timeBound = head?.time_bound ?? Number.MIN_SAFE_INTEGER;
  let expectedSeq = (head?.seq ?? 0) + 1;
  for (let from = 0; from < records.length; from += rowsPerStatement) {
    const values: unknown[] = [];
    for (const record of records.slice(from, from + rowsPerStatement)) {
      if (record.seq !== expectedSeq++) {
        throw new Error(
          `audit record ${record.seq} does not continue the trail at ${expectedSeq - 1}`,
        );
      }
      timeBound = Math.max(timeBound, record.time);
      pushAuditValues(values, record, timeBound);
    }
    statements.push(values);
  }
  return statements;
}

/** The first record at or after a seq: its seq and time_bound. */
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
 * is not ordered). Returns `headSeq + 1` when no record can match.
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
    // Nothing between middle and found.seq exists: all of it is too early.
    else low = found.seq + 1;
  }
  return low;
}
