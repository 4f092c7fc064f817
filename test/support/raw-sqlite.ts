import type BetterSqlite3 from "better-sqlite3";
import { openSqliteDatabase } from "../../src/keystore/sqlite/driver.js";

/** A plain connection, as another tool (or the sqlite3 shell) would open the file. */
export function withRawDb<T>(path: string, fn: (db: BetterSqlite3.Database) => T): T {
  const db = openSqliteDatabase(path, { fileMustExist: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}
