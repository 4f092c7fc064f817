import Database from "better-sqlite3";
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
import { writeTransaction } from "./sql.js";

export type AuditChain = (prevHash: string, seq: number, entry: AuditEntry) => string;

interface ReadParams {
  projectId?: string;
  since?: number;
  afterSeq: number;
  limit: number;
}

const ROW_PLACEHOLDERS = `(${Array.from({ length: 14 }, () => "?").join(", ")})`;
/** Records per INSERT statement (14 parameters each, well under SQLite's limit). */
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
 * predicate would keep SQLite from using the (project_id, time) and (time)
 * indexes on what is the store's largest table.
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
  /** INSERT statements of 1..INSERT_ROWS rows, prepared as first needed. */
  readonly #inserts = new Map<number, Database.Statement<unknown[]>>();
  readonly #reads = new Map<string, Database.Statement<[ReadParams], AuditRow>>();

  constructor(db: Database.Database) {
    this.#db = db;
    this.#head = db.prepare<[], AuditHead>(
      "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1",
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
      statement = this.#db.prepare(`INSERT INTO audit_records (${AUDIT_COLUMNS}) VALUES ${values}`);
      this.#inserts.set(rows, statement);
    }
    return statement;
  }

  append(entries: readonly AuditEntry[], chain: AuditChain): void {
    if (entries.length === 0) return;
    const copies = entries.map(copyAuditEntry);
    // The head is read under the write lock: another process appending at the
    // same time either committed before (and its head is read) or waits.
    writeTransaction(this.#db, () => {
      let prev = this.#head.get() ?? { seq: 0, hash: GENESIS_HASH };
      for (let from = 0; from < copies.length; from += INSERT_ROWS) {
        const chunk = copies.slice(from, from + INSERT_ROWS);
        const values: unknown[] = [];
        for (const entry of chunk) {
          const seq = prev.seq + 1;
          const hash = chain(prev.hash, seq, entry);
          pushAuditValues(values, seq, entry, prev.hash, hash);
          prev = { seq, hash };
        }
        this.#insertRows(chunk.length).run(...values);
      }
    });
  }

  read(query: AuditQuery): AuditRecord[] {
    if (!Number.isSafeInteger(query.limit) || query.limit < 1) {
      throw new RangeError(`limit must be a positive integer, got ${query.limit}`);
    }
    const params: ReadParams = { afterSeq: query.afterSeq ?? 0, limit: query.limit };
    if (query.projectId !== undefined) params.projectId = query.projectId;
    if (query.since !== undefined) params.since = query.since;
    return this.#read(query.projectId !== undefined, query.since !== undefined)
      .all(params)
      .map(toAuditRecord);
  }

  head(): AuditHead | undefined {
    return this.#head.get();
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
