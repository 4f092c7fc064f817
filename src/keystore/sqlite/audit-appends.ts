/**
 * How the SQLite store keeps the audit trail: one row per run of records,
 * not one row per record. A row holds consecutive records of one format,
 * their texts joined by newlines (JSON text holds no raw newline), and only
 * its last record may carry a seal. An append of kmsd's is one row: the
 * records of one seal. A row per record cost two to three times as much
 * per record to write, on a table every request appends to
 * (docs/benchmarks.md#the-audit-trail-one-row-per-append).
 *
 * Rows are storage only: the store still reads and writes records (see
 * AuditStore), so the chain, its verifier and store copies see one record
 * per seq whatever the rows are.
 */
import { RunningTimeBound } from "../audit-append.js";
import type { AuditFormat, StoredAuditRecord } from "../audit-types.js";

/** A row of audit_appends. */
export interface AuditAppendRow {
  /** The seq of its last record: the primary key, so a seq finds its row with one seek. */
  last_seq: number;
  first_seq: number;
  /** The highest time of any record up to and including its last one (see firstSeqSince). */
  time_bound: number;
  format: number;
  /** The records' texts, in seq order, joined by "\n". */
  records: string;
  /** The last record's seal, if it has one. */
  seal: string | null;
}

/** A row to insert, and the projects its records name (for the project index). */
export interface PackedAppend {
  readonly row: AuditAppendRow;
  readonly projects: ReadonlySet<string>;
}

const SEPARATOR = "\n";

/**
 * Packs records (consecutive seqs, as an append's build returns them) into
 * rows: a row ends at a sealed record, and before a change of format or a
 * gap in seq, so that unpacking gives back exactly these records.
 * `timeBound` is the highest time before the first record.
 */
export function packAuditRecords(
  records: readonly StoredAuditRecord[],
  timeBound: number,
): PackedAppend[] {
  const packed: PackedAppend[] = [];
  const bound = new RunningTimeBound(timeBound);
  let start = 0;
  for (let i = 0; i < records.length; i++) {
    const record = records[i] as StoredAuditRecord;
    if (record.text.includes(SEPARATOR)) {
      throw new Error(`audit record ${record.seq} holds a newline: it cannot be stored`);
    }
    const boundSoFar = bound.add(record.time);
    const next = records[i + 1];
    const endsRow =
      next === undefined ||
      record.seal !== undefined ||
      next.format !== record.format ||
      next.seq !== record.seq + 1;
    if (!endsRow) continue;
    const run = records.slice(start, i + 1);
    packed.push({
      row: {
        last_seq: record.seq,
        first_seq: (run[0] as StoredAuditRecord).seq,
        time_bound: boundSoFar,
        format: record.format,
        records: run.map((r) => r.text).join(SEPARATOR),
        seal: record.seal ?? null,
      },
      projects: new Set(run.map((r) => r.projectId)),
    });
    start = i + 1;
  }
  return packed;
}

/**
 * The records of a row. Each record's time and project are read from its
 * text, which the seal covers; a text that is not a JSON object gets no
 * time (NaN) and no project (""), and the verifier reports it. A row whose
 * texts do not fill its seq range is unpacked as it is: its records then
 * fail their seal, or leave a gap, and the verifier reports that too.
 */
export function unpackAuditAppend(row: AuditAppendRow): StoredAuditRecord[] {
  if (row.format !== 1 && row.format !== 2) {
    throw new Error(
      `audit records ${row.first_seq} to ${row.last_seq} have an unknown format ${row.format}`,
    );
  }
  const format: AuditFormat = row.format;
  const texts = row.records.split(SEPARATOR);
  const last = texts.length - 1;
  return texts.map((text, i) => {
    const { time, projectId } = recordIndexFields(text);
    return {
      seq: row.first_seq + i,
      time,
      projectId,
      text,
      seal: i === last ? (row.seal ?? undefined) : undefined,
      format,
    };
  });
}

/** A record text's time and project, as reads filter on them (NaN and "" when it has none). */
export function recordIndexFields(text: string): { time: number; projectId: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { time: Number.NaN, projectId: "" };
  }
  const fields = (typeof parsed === "object" && parsed !== null ? parsed : {}) as Record<
    string,
    unknown
  >;
  return {
    time: typeof fields.time === "number" ? fields.time : Number.NaN,
    projectId: typeof fields.projectId === "string" ? fields.projectId : "",
  };
}
