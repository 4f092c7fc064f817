import Database from "better-sqlite3";

/**
 * Runs fn in a BEGIN IMMEDIATE transaction: the write lock is taken up
 * front, so a read-modify-write never fails midway with SQLITE_BUSY_SNAPSHOT
 * (which busy_timeout does not retry) and never works from a stale read.
 */
export function writeTransaction<T>(db: Database.Database, fn: () => T): T {
  return db.transaction(fn).immediate();
}

/**
 * Whether error is a violation of that kind of constraint. The extended code
 * tells a primary key clash from another UNIQUE constraint on the same row.
 */
export function isConstraintViolation(error: unknown, kind: "UNIQUE" | "PRIMARYKEY"): boolean {
  return error instanceof Database.SqliteError && error.code === `SQLITE_CONSTRAINT_${kind}`;
}
