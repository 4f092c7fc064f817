import { createRequire } from "node:module";
import type BetterSqlite3 from "better-sqlite3";

/**
 * The SQLite driver, better-sqlite3, in the version this Node.js can run.
 *
 * better-sqlite3 12, the last line that runs on Node 20, derives its
 * statements from node::ObjectWrap, and on Node 24 the destructor of one
 * that the garbage collector frees outside a JavaScript context aborts the
 * whole process ("Assertion failed: (env) != nullptr" in
 * RemoveEnvironmentCleanupHook; WiseLibs/better-sqlite3#1515, closed
 * without a fix in 12; seen here with Node 24.9 and 24.21). 13 is built
 * on Node-API instead, ships its binaries prebuilt, and needs Node 22 (on
 * Node 20 it crashes). So kmsd depends on both: 12 as `better-sqlite3`,
 * loaded up to Node 23, and 13 as the optional `better-sqlite3-node24`
 * (npm installs it where its engines allow, Node 22 on, and skips it on
 * Node 20), loaded from Node 24 on. Both keep the same file format and API.
 */
export type SqliteDriver = typeof BetterSqlite3;

/** The package this Node.js loads the driver from. */
export function sqliteDriverPackage(nodeVersion: string = process.versions.node): string {
  const major = Number(nodeVersion.split(".", 1)[0]);
  return major >= 24 ? "better-sqlite3-node24" : "better-sqlite3";
}

const require = createRequire(import.meta.url);
let loaded: SqliteDriver | undefined;

/**
 * The driver, loaded on first use (a server on PostgreSQL never loads it).
 * Throws, saying what to do, when this Node.js's package is not installed
 * (an install that skipped optional dependencies, on Node 24).
 */
export function sqliteDriver(): SqliteDriver {
  if (loaded !== undefined) return loaded;
  const name = sqliteDriverPackage();
  try {
    loaded = require(name) as SqliteDriver;
  } catch (error) {
    throw new Error(
      `the SQLite store cannot load its driver on Node.js ${process.versions.node} (${name}: ` +
        `${(error as Error).message.split("\n", 1)[0]}). Install kmsd's dependencies with their ` +
        "optional ones (npm ci, without --omit=optional), or use PostgreSQL (--database-url)",
    );
  }
  return loaded;
}

/** A connection to the SQLite file at `path`, through this Node.js's driver. */
export function openSqliteDatabase(
  path: string,
  options?: BetterSqlite3.Options,
): BetterSqlite3.Database {
  return new (sqliteDriver())(path, options);
}

/** Where the driver's package is: a worker thread must load the same one. */
export function sqliteDriverPath(): string {
  return require.resolve(sqliteDriverPackage());
}
