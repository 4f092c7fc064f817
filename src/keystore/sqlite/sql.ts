import type BetterSqlite3 from "better-sqlite3";
import { sqliteDriver } from "./driver.js";

/**
 * Runs fn in a BEGIN IMMEDIATE transaction: the write lock is taken up
 * front, so a read-modify-write never fails midway with SQLITE_BUSY_SNAPSHOT
 * (which busy_timeout does not retry) and never works from a stale read.
 */
export function writeTransaction<T>(db: BetterSqlite3.Database, fn: () => T): T {
  return db.transaction(fn).immediate();
}

/**
 * Whether error is a violation of that kind of constraint. The extended code
 * tells a primary key clash from another UNIQUE constraint on the same row.
 */
export function isConstraintViolation(error: unknown, kind: "UNIQUE" | "PRIMARYKEY"): boolean {
  return sqliteErrorCode(error) === `SQLITE_CONSTRAINT_${kind}`;
}

/**
 * Runs fn again while SQLite answers SQLITE_BUSY, for up to `timeoutMs`,
 * after a short random pause each time. For the one case the connection's
 * busy timeout does not cover: two processes opening a new file at once
 * both switch it to WAL, each holding a read lock and wanting the write
 * lock, and SQLite refuses one of them at once rather than let both wait
 * for each other.
 */
export async function retryWhileBusy<T>(fn: () => T, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return fn();
    } catch (error) {
      const busy = sqliteErrorCode(error) === "SQLITE_BUSY";
      if (!busy || Date.now() >= deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 20));
    }
  }
}

/** The SQLite result code of an error the driver threw; undefined for any other error. */
function sqliteErrorCode(error: unknown): string | undefined {
  return error instanceof sqliteDriver().SqliteError ? error.code : undefined;
}
