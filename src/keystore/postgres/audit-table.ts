import {
  type AuditEntry,
  type AuditHead,
  type AuditQuery,
  type AuditRecord,
  GENESIS_HASH,
} from "../audit-types.js";
import {
  AUDIT_COLUMNS,
  type AuditRow,
  copyAuditEntry,
  pushAuditValues,
  toAuditRecord,
} from "../rows.js";
import type { PgDatabase } from "./database.js";
import { LockClass } from "./migrations.js";

export type AuditChain = (prevHash: string, seq: number, entry: AuditEntry) => string;

/** Records per INSERT statement (14 parameters each, well under PostgreSQL's 65535). */
const INSERT_ROWS = 500;
const COLUMNS_PER_ROW = 14;

function placeholders(rows: number): string {
  return Array.from({ length: rows }, (_, row) => {
    const at = row * COLUMNS_PER_ROW;
    return `(${Array.from({ length: COLUMNS_PER_ROW }, (_, c) => `$${at + c + 1}`).join(", ")})`;
  }).join(", ");
}

/** The audit_records table: one hash chain, whoever appends. */
export class PgAuditTable {
  constructor(private readonly db: PgDatabase) {}

  /**
   * The head is read after taking the schema's audit lock (a transaction
   * advisory lock, held until commit): appenders from any process or pool
   * take turns, each continuing from the head the previous one committed.
   */
  async append(entries: readonly AuditEntry[], chain: AuditChain): Promise<void> {
    if (entries.length === 0) return;
    const copies = entries.map(copyAuditEntry);
    await this.db.transaction(async (tx) => {
      await tx.rows({
        name: "kmsd_audit_lock",
        text: "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        values: [LockClass.AuditChain, this.db.schema],
      });
      const [head] = await tx.rows<AuditHead>({
        name: "kmsd_audit_head",
        text: "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1",
      });
      let prev = head ?? { seq: 0, hash: GENESIS_HASH };
      for (let from = 0; from < copies.length; from += INSERT_ROWS) {
        const chunk = copies.slice(from, from + INSERT_ROWS);
        const values: unknown[] = [];
        for (const entry of chunk) {
          const seq = prev.seq + 1;
          const hash = chain(prev.hash, seq, entry);
          pushAuditValues(values, seq, entry, prev.hash, hash);
          prev = { seq, hash };
        }
        await tx.count({
          text: `INSERT INTO audit_records (${AUDIT_COLUMNS}) VALUES ${placeholders(chunk.length)}`,
          values,
        });
      }
    });
  }

  async read(query: AuditQuery): Promise<AuditRecord[]> {
    if (!Number.isSafeInteger(query.limit) || query.limit < 1) {
      throw new RangeError(`limit must be a positive integer, got ${query.limit}`);
    }
    // Only the filters the query uses appear in the SQL, so the planner
    // picks the (project_id, time) or (time) index on the largest table.
    const values: unknown[] = [query.afterSeq ?? 0];
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
    return rows.map(toAuditRecord);
  }

  async head(): Promise<AuditHead | undefined> {
    const [head] = await this.db.rows<AuditHead>({
      text: "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1",
    });
    return head;
  }
}
