import type Database from "better-sqlite3";
import {
  type AuditAppendRow,
  packAuditRecords,
  recordIndexFields,
  unpackAuditAppend,
} from "../../src/keystore/sqlite/audit-appends.js";

/**
 * The SQLite store's audit trail record by record, for tests that change it
 * behind kmsd's back as an attacker with write access to the file would.
 * The store keeps runs of records per row (src/keystore/sqlite/audit-appends.ts).
 */
export interface RawAuditRecord {
  seq: number;
  record: string;
  seal: string | null;
  format: number;
}

export function rawAuditRecords(db: Database.Database): RawAuditRecord[] {
  return db
    .prepare<[], AuditAppendRow>("SELECT * FROM audit_appends ORDER BY last_seq")
    .all()
    .flatMap(unpackAuditAppend)
    .map(({ seq, text, seal, format }) => ({ seq, record: text, seal: seal ?? null, format }));
}

/**
 * Rewrites the whole trail with what `change` makes of its records (changed
 * in place, or returned anew), packed into rows as the store packs appends.
 */
export function rewriteAuditRecords(
  db: Database.Database,
  change: (records: RawAuditRecord[]) => RawAuditRecord[] | undefined,
): void {
  const before = rawAuditRecords(db);
  const after = change(before) ?? before;
  const records = after.map(({ seq, record, seal, format }) => ({
    seq,
    text: record,
    seal: seal ?? undefined,
    format: format as 1 | 2,
    ...recordIndexFields(record),
  }));
  db.transaction(() => {
    db.prepare("DELETE FROM audit_append_projects").run();
    db.prepare("DELETE FROM audit_appends").run();
    const insertRow = db.prepare<[AuditAppendRow]>(
      `INSERT INTO audit_appends (last_seq, first_seq, time_bound, format, records, seal)
        VALUES (@last_seq, @first_seq, @time_bound, @format, @records, @seal)`,
    );
    const insertProject = db.prepare<[string, number]>(
      "INSERT INTO audit_append_projects (project_id, last_seq) VALUES (?, ?)",
    );
    for (const { row, projects } of packAuditRecords(records, Number.MIN_SAFE_INTEGER)) {
      insertRow.run(row);
      for (const project of projects) insertProject.run(project, row.last_seq);
    }
  })();
}

/** Replaces record `seq`'s text with what `edit` makes of it. */
export function editAuditText(
  db: Database.Database,
  seq: number,
  edit: (text: string) => string,
): void {
  rewriteAuditRecords(db, (records) => {
    const target = records.find((record) => record.seq === seq);
    if (target === undefined) throw new Error(`no audit record ${seq}`);
    target.record = edit(target.record);
    return undefined;
  });
}

/** Replaces record `seq`'s text with what `edit` makes of its parsed fields. */
export function editAuditRecord(
  db: Database.Database,
  seq: number,
  edit: (fields: Record<string, unknown>) => void,
): void {
  editAuditText(db, seq, (text) => {
    const fields = JSON.parse(text) as Record<string, unknown>;
    edit(fields);
    return JSON.stringify(fields);
  });
}

/** The first record of the append holding record `seq`: the one after the previous seal. */
export function appendStart(db: Database.Database, seq: number): number {
  const sealedBefore = rawAuditRecords(db).filter((r) => r.seq < seq && r.seal !== null);
  return (sealedBefore.at(-1)?.seq ?? 0) + 1;
}
