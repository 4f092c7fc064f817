import {
  type AuditHeadRow,
  auditInsertValues,
  firstSeqSince,
  RunningTimeBound,
  toAuditHead,
} from "../audit-append.js";
import type {
  AuditBuild,
  AuditHead,
  AuditIndexProblem,
  AuditQuery,
  StoredAuditRecord,
} from "../audit-types.js";
import {
  AUDIT_COLUMNS,
  AUDIT_INSERT_COLUMNS,
  type AuditRow,
  toStoredAuditRecord,
} from "../rows.js";
import type { PgDatabase } from "./database.js";
import { LockClass } from "./migrations.js";

/** Records per page of the time bound check. */
const BOUNDS_PAGE = 10_000;
/** Records per INSERT statement (7 parameters each, well under PostgreSQL's 65535). */
const INSERT_ROWS = 1000;
const COLUMNS_PER_ROW = 7;

function placeholders(rows: number): string {
  return Array.from({ length: rows }, (_, row) => {
    const at = row * COLUMNS_PER_ROW;
    return `(${Array.from({ length: COLUMNS_PER_ROW }, (_, c) => `$${at + c + 1}`).join(", ")})`;
  }).join(", ");
}

const HEAD = {
  name: "kmsd_audit_head",
  text: "SELECT seq, seal, time_bound FROM audit_records ORDER BY seq DESC LIMIT 1",
};

/** The audit_records table: one sealed trail, whoever appends. */
export class PgAuditTable {
  constructor(private readonly db: PgDatabase) {}

  /**
   * The head is read after taking the schema's audit lock (a transaction
   * advisory lock, held until commit): appenders from any process or pool
   * take turns, each continuing from the head the previous one committed.
   */
  async append(build: AuditBuild): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.rows({
        name: "kmsd_audit_lock",
        text: "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        values: [LockClass.AuditChain, this.db.schema],
      });
      const [head] = await tx.rows<AuditHeadRow>(HEAD);
      for (const values of auditInsertValues(head, build, INSERT_ROWS)) {
        await tx.count({
          text: `INSERT INTO audit_records (${AUDIT_INSERT_COLUMNS})
            VALUES ${placeholders(values.length / COLUMNS_PER_ROW)}`,
          values,
        });
      }
    });
  }

  async read(query: AuditQuery): Promise<StoredAuditRecord[]> {
    if (!Number.isSafeInteger(query.limit) || query.limit < 1) {
      throw new RangeError(`limit must be a positive integer, got ${query.limit}`);
    }
    let afterSeq = query.afterSeq ?? 0;
    if (query.since !== undefined) {
      const headSeq = (await this.headRow())?.seq ?? 0;
      const from = await firstSeqSince(query.since, afterSeq, headSeq, async (seq) => {
        const [row] = await this.db.rows<{ seq: number; time_bound: number }>({
          name: "kmsd_audit_time_bound",
          text: "SELECT seq, time_bound FROM audit_records WHERE seq >= $1 ORDER BY seq LIMIT 1",
          values: [seq],
        });
        return row;
      });
      afterSeq = from - 1;
    }
    // Only the filters the query uses appear in the SQL, so the planner
    // picks the (project_id, seq) index or the primary key on the largest table.
    const values: unknown[] = [afterSeq];
    const where = ["seq > $1"];
    if (query.projectId !== undefined) {
      values.push(query.projectId);
      where.push(`project_id = $${values.length}`);
    }
    if (query.since !== undefined) {
      values.push(query.since);
      where.push(`time >= $${values.length}`);
    }
    values.push(query.limit);
    const rows = await this.db.rows<AuditRow>({
      text: `SELECT ${AUDIT_COLUMNS} FROM audit_records WHERE ${where.join(" AND ")}
        ORDER BY seq LIMIT $${values.length}`,
      values,
    });
    return rows.map(toStoredAuditRecord);
  }

  /**
   * The time bounds: the one query aid the verifier does not already check
   * record by record (it compares each record's time and project columns
   * with its text).
   */
  async indexProblem(): Promise<AuditIndexProblem | undefined> {
    const timeBound = new RunningTimeBound();
    for (let afterSeq = 0; ; ) {
      const rows = await this.db.rows<{ seq: number; time: number; time_bound: number }>({
        name: "kmsd_audit_time_bounds",
        text: "SELECT seq, time, time_bound FROM audit_records WHERE seq > $1 ORDER BY seq LIMIT $2",
        values: [afterSeq, BOUNDS_PAGE],
      });
      for (const row of rows) {
        timeBound.add(row.time);
        const problem = timeBound.problemWith(row.time_bound, row.seq);
        if (problem !== undefined) return problem;
      }
      const last = rows.at(-1);
      if (last === undefined || rows.length < BOUNDS_PAGE) return undefined;
      afterSeq = last.seq;
    }
  }

  async head(): Promise<AuditHead | undefined> {
    const row = await this.headRow();
    return row === undefined ? undefined : toAuditHead(row);
  }

  private async headRow(): Promise<AuditHeadRow | undefined> {
    const [row] = await this.db.rows<AuditHeadRow>(HEAD);
    return row;
  }
}
