import Database from "better-sqlite3";

/** A plain connection, as another tool (or the sqlite3 shell) would open the file. */
export function withRawDb<T>(path: string, fn: (db: Database.Database) => T): T {
  const db = new Database(path, { fileMustExist: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}
