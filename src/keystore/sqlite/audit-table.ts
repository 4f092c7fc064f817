import Database from "better-sqlite3";
import {
  type AuditHeadRow,
  auditInsertValues,
  firstSeqSince,
  toAuditHead,
} from "../audit-append.js";
import type { AuditBuild, AuditHead, AuditQuery, StoredAuditRecord } from "../audit-types.js";
import {
  AUDIT_COLUMNS,
  AUDIT_INSERT_COLUMNS,
  type AuditRow,
  toStoredAuditRecord,
} from "../rows.js";
import { writeTransaction } from "./sql.js";

interface ReadParams {
  projectId?: string;
  since?: number;
  afterSeq: number;
  limit: number;
}

const COLUMNS_PER_ROW = 7;
const ROW_PLACEHOLDERS = `(${Array.from({ length: COLUMNS_PER_ROW }, () => "?").join(", ")})`;
/** Records per INSERT statement (7 parameters each, well under SQLite's limit). */
const INSERT_ROWS = 50;

/**
 * Opens the connection audit appends go through. The store's main connection
 * must have opened (and migrated) the file first: this one only joins it.
 */
export function openAuditConnection(path: string, busyTimeoutMs: number): Database.Database {
  const db = new Database(path, { timeout: busyTimeoutMs, fileMustExist: true });
  try {
    const mode = db.pragma("journal_mode", { simple: true });
    if (mode !== "wal") throw new Error(`${path}: expected WAL journal mode (got ${mode})`);
    // NORMAL: in WAL mode a commit then only appends to the log, without an
    // fsync, so an append never holds the write lock that key writes wait for
    // during a disk flush. A committed record still survives a crash of the
    // process; only a power loss (or OS crash) may lose the last commits.
    // Acceptable for the trail, not for keys, whose connection stays FULL.
    db.pragma("synchronous = NORMAL");
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

/**
 * Only the filters the query uses appear in the SQL: an `@x IS NULL OR`
 * predicate would keep SQLite from using the (project_id, seq) index on
 * what is the store's largest table. A time filter starts at the seq
 * firstSeqSince finds, so it needs no index of its own.
 */
function readSql(byProject: boolean, bySince: boolean): string {
  const where = ["seq > @afterSeq"];
  if (byProject) where.push("project_id = @projectId");
  if (bySince) where.push("time >= @since");
  return `SELECT ${AUDIT_COLUMNS} FROM audit_records WHERE ${where.join(" AND ")}
    ORDER BY seq LIMIT @limit`;
}

/** The audit_records table, on its own connection (see openAuditConnection). */
export class AuditTable {
  readonly #db: Database.Database;
  readonly #head;
  readonly #timeBoundAt;
  /** INSERT statements of 1..INSERT_ROWS rows, prepared as first needed. */
  readonly #inserts = new Map<number, Database.Statement<unknown[]>>();
  readonly #reads = new Map<string, Database.Statement<[ReadParams], AuditRow>>();

  constructor(db: Database.Database) {
    this.#db = db;
    this.#head = db.prepare<[], AuditHeadRow>(
      "SELECT seq, seal, time_bound FROM audit_records ORDER BY seq DESC LIMIT 1",
    );
    this.#timeBoundAt = db.prepare<[number], { seq: number; time_bound: number }>(
      "SELECT seq, time_bound FROM audit_records WHERE seq >= ? ORDER BY seq LIMIT 1",
    );
  }

  /**
   * One statement inserts up to INSERT_ROWS records with positional
   * parameters: binding by name, one row per statement, cost several times
   * as much per record on a table every request appends to.
   */
  #insertRows(rows: number): Database.Statement<unknown[]> {
    let statement = this.#inserts.get(rows);
    if (statement === undefined) {
      const values = Array.from({ length: rows }, () => ROW_PLACEHOLDERS).join(", ");
      statement = this.#db.prepare(
        `INSERT INTO audit_records (${AUDIT_INSERT_COLUMNS}) VALUES ${values}`,
      );
      this.#inserts.set(rows, statement);
    }
    return statement;
  }

  append(build: AuditBuild): void {
    // The head is read under the write lock: another process appending at the
    // same time either committed before (and its head is read) or waits.
    writeTransaction(this.#db, () => {
      for (const values of auditInsertValues(this.#head.get(), build, INSERT_ROWS)) {
        this.#insertRows(values.length / COLUMNS_PER_ROW).run(...values);
      }
    });
  }

  async read(query: AuditQuery): Promise<StoredAuditRecord[]> {
    if (!Number.isSafeInteger(query.limit) || query.limit < 1) {
      throw new RangeError(`limit must be a positive integer, got ${query.limit}`);
    }
    const params: ReadParams = { afterSeq: query.afterSeq ?? 0, limit: query.limit };
    if (query.projectId !== undefined) params.projectId = query.projectId;
    if (query.since !== undefined) {
      params.since = query.since;
      const headSeq = this.#head.get()?.seq ?? 0;
      const from = await firstSeqSince(query.since, params.afterSeq, headSeq, (seq) =>
        this.#timeBoundAt.get(seq),
      );
      params.afterSeq = from - 1;
    }
    return this.#read(query.projectId !== undefined, query.since !== undefined)
      .all(params)
      .map(toStoredAuditRecord);
  }

  head(): AuditHead | undefined {
    const row = this.#head.get();
    return row === undefined ? undefined : toAuditHead(row);
  }

  #read(byProject: boolean, bySince: boolean): Database.Statement<[ReadParams], AuditRow> {
    const name = `${byProject}/${bySince}`;
    let statement = this.#reads.get(name);
    if (statement === undefined) {
      statement = this.#db.prepare<[ReadParams], AuditRow>(readSql(byProject, bySince));
      this.#reads.set(name, statement);
    }
    return statement;
  }
}
