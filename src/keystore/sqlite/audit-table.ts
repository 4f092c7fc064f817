import type BetterSqlite3 from "better-sqlite3";
import {
  type AuditHeadRow,
  continuingRecords,
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
import { type AuditAppendRow, packAuditRecords, unpackAuditAppend } from "./audit-appends.js";
import { openSqliteDatabase } from "./driver.js";
import { writeTransaction } from "./sql.js";

/**
 * Opens the connection audit appends go through. The store's main connection
 * must have opened (and migrated) the file first: this one only joins it.
 */
export function openAuditConnection(path: string, busyTimeoutMs: number): BetterSqlite3.Database {
  const db = openSqliteDatabase(path, { timeout: busyTimeoutMs, fileMustExist: true });
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

const APPEND_COLUMNS = "last_seq, first_seq, time_bound, format, records, seal";

/** The audit trail in audit_appends (see audit-appends.ts), on its own connection (see openAuditConnection). */
export class AuditTable {
  readonly #db: BetterSqlite3.Database;
  readonly #head;
  readonly #timeBoundAt;
  readonly #insertAppend;
  readonly #insertProject;
  readonly #rowsAfter;
  readonly #projectRowsAfter;
  readonly #projectIndex;

  constructor(db: BetterSqlite3.Database) {
    this.#db = db;
    this.#head = db.prepare<[], AuditHeadRow>(
      "SELECT last_seq AS seq, seal, time_bound FROM audit_appends ORDER BY last_seq DESC LIMIT 1",
    );
    this.#timeBoundAt = db.prepare<[number], { seq: number; time_bound: number }>(
      "SELECT last_seq AS seq, time_bound FROM audit_appends WHERE last_seq >= ? ORDER BY last_seq LIMIT 1",
    );
    this.#insertAppend = db.prepare<[AuditAppendRow]>(
      `INSERT INTO audit_appends (${APPEND_COLUMNS})
        VALUES (@last_seq, @first_seq, @time_bound, @format, @records, @seal)`,
    );
    this.#insertProject = db.prepare<[string, number]>(
      "INSERT INTO audit_append_projects (project_id, last_seq) VALUES (?, ?)",
    );
    this.#rowsAfter = db.prepare<[number], AuditAppendRow>(
      `SELECT ${APPEND_COLUMNS} FROM audit_appends WHERE last_seq > ? ORDER BY last_seq`,
    );
    // The project index names every row holding a record of the project;
    // which of its records are the project's, their texts say.
    this.#projectRowsAfter = db.prepare<[string, number], AuditAppendRow>(
      `SELECT ${APPEND_COLUMNS} FROM audit_append_projects JOIN audit_appends USING (last_seq)
        WHERE project_id = ? AND last_seq > ? ORDER BY last_seq`,
    );
    this.#projectIndex = db.prepare<[], { project_id: string; last_seq: number }>(
      "SELECT project_id, last_seq FROM audit_append_projects",
    );
  }

  append(build: AuditBuild): void {
    // The head is read under the write lock: another process appending at the
    // same time either committed before (and its head is read) or waits.
    writeTransaction(this.#db, () => {
      const head = this.#head.get();
      const records = continuingRecords(head, build);
      const timeBound = head?.time_bound ?? Number.MIN_SAFE_INTEGER;
      for (const { row, projects } of packAuditRecords(records, timeBound)) {
        this.#insertAppend.run(row);
        for (const project of projects) this.#insertProject.run(project, row.last_seq);
      }
    });
  }

  async read(query: AuditQuery): Promise<StoredAuditRecord[]> {
    if (!Number.isSafeInteger(query.limit) || query.limit < 1) {
      throw new RangeError(`limit must be a positive integer, got ${query.limit}`);
    }
    const { projectId, since } = query;
    let afterSeq = query.afterSeq ?? 0;
    if (since !== undefined) {
      const headSeq = this.#head.get()?.seq ?? 0;
      const from = await firstSeqSince(since, afterSeq, headSeq, (seq) =>
        this.#timeBoundAt.get(seq),
      );
      afterSeq = from - 1;
    }
    // Rows are read one at a time, and only until the page is full: a row
    // holds up to a whole append.
    const rows =
      projectId === undefined
        ? this.#rowsAfter.iterate(afterSeq)
        : this.#projectRowsAfter.iterate(projectId, afterSeq);
    const found: StoredAuditRecord[] = [];
    for (const row of rows) {
      for (const record of unpackAuditAppend(row)) {
        if (record.seq <= afterSeq) continue;
        if (projectId !== undefined && record.projectId !== projectId) continue;
        if (since !== undefined && !(record.time >= since)) continue;
        found.push(record);
        // Leaving the loop ends the statement (the iterator's return()).
        if (found.length === query.limit) return found;
      }
    }
    return found;
  }

  /**
   * Every record's project must be indexed for its row, and every row's
   * time bound must cover its records and those before. One pass over the
   * trail, with the index (a few entries per append) held in memory.
   */
  indexProblem(): AuditIndexProblem | undefined {
    const indexed = new Map<number, Set<string>>();
    for (const { project_id, last_seq } of this.#projectIndex.iterate()) {
      const projects = indexed.get(last_seq) ?? new Set<string>();
      projects.add(project_id);
      indexed.set(last_seq, projects);
    }
    const timeBound = new RunningTimeBound();
    for (const row of this.#rowsAfter.iterate(0)) {
      for (const record of unpackAuditAppend(row)) {
        timeBound.add(record.time);
        if (indexed.get(row.last_seq)?.has(record.projectId) !== true) {
          return {
            seq: record.seq,
            problem: `the project index does not list record ${record.seq}'s project (${JSON.stringify(record.projectId)}): reads by project would miss it`,
          };
        }
      }
      const problem = timeBound.problemWith(row.time_bound, row.last_seq);
      if (problem !== undefined) return problem;
    }
    return undefined;
  }

  head(): AuditHead | undefined {
    const row = this.#head.get();
    return row === undefined ? undefined : toAuditHead(row);
  }
}
