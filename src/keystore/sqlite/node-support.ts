/**
 * Why the SQLite store cannot run on this Node.js, if it cannot.
 *
 * better-sqlite3 12, the last line that builds on Node 20, derives its
 * statements from node::ObjectWrap, and on Node 24 the destructor of one
 * that the garbage collector frees outside a JavaScript context aborts the
 * whole process ("Assertion failed: (env) != nullptr" in
 * RemoveEnvironmentCleanupHook; WiseLibs/better-sqlite3#1515, closed
 * without a fix in 12; 13 fixes it and needs Node 22). Seen here with
 * Node 24.9 and 24.21: a worker died at start. Refusing to start says so
 * at once instead of crashing at a random moment under load.
 */
export function sqliteUnsupportedReason(
  nodeVersion: string = process.versions.node,
): string | undefined {
  const major = Number(nodeVersion.split(".", 1)[0]);
  if (major < 24) return undefined;
  return (
    `the SQLite store does not run on Node.js ${nodeVersion}: better-sqlite3 12 aborts the process ` +
    "on Node 24 and newer when it frees a statement. Run kmsd on Node.js 20 or 22, " +
    "or use PostgreSQL (--database-url), which works on Node 24"
  );
}
