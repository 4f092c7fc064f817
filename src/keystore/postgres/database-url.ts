/**
 * The database URL: kmsd's own parameters split off, the rest left to pg.
 * No pg import, so that reading settings does not load the driver.
 */

/** How to reach PostgreSQL, as openPostgresStore takes it. */
export interface PostgresConnectionOptions {
  /**
   * postgres://user[:password]@host[:port]/database[?params]. The libpq
   * parameters pg understands (sslmode, sslrootcert, application_name,
   * options, ...) are honoured; `schema=<name>` (kmsd's own, removed before
   * connecting) puts kmsd's tables in that schema, created if missing.
   */
  readonly url: string;
  /** Most connections the pool opens (the LISTEN connection comes on top). Defaults to 5. */
  readonly poolSize?: number;
  /** How long opening a connection (or waiting for a free one) may take. Defaults to 2000 ms. */
  readonly connectTimeoutMs?: number;
  /** Longest a statement may run, server-side. Defaults to 10000 ms. */
  readonly statementTimeoutMs?: number;
}

export interface ParsedDatabaseUrl {
  /** The URL without kmsd's own parameters, as pg takes it. */
  readonly connectionString: string;
  /** From `schema=`; undefined leaves the server's search_path in charge. */
  readonly schema: string | undefined;
  /** libpq `options` (from the URL) with kmsd's search_path added. */
  readonly options: string | undefined;
  /** From `application_name=`, else "kmsd"; the LISTEN connection adds "-listen". */
  readonly applicationName: string;
}

/**
 * Lower-case identifiers only: they need no quoting anywhere (search_path,
 * CREATE SCHEMA, notification payloads), so no name can change meaning.
 */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Splits kmsd's `schema` parameter off the URL. Errors never quote the URL:
 * it may hold a password.
 */
export function parseDatabaseUrl(url: string): ParsedDatabaseUrl {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error("the database URL is not a valid URL");
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
    throw new Error("the database URL must start with postgres:// or postgresql://");
  }
  const schemas = parsed.searchParams.getAll("schema");
  if (schemas.length > 1) throw new Error("the database URL names more than one schema");
  const schema = schemas[0];
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
    throw new Error(
      `schema ${JSON.stringify(schema)} must be a lower-case identifier (${SCHEMA_NAME.source})`,
    );
  }
  parsed.searchParams.delete("schema");
  // pg lets the URL's parameters override the configuration object, so the
  // URL's own `options` are moved out of it and combined with the search_path.
  const urlOptions = parsed.searchParams.get("options") ?? undefined;
  parsed.searchParams.delete("options");
  const searchPath = schema === undefined ? undefined : `-c search_path=${schema}`;
  const options = [urlOptions, searchPath].filter((o) => o !== undefined).join(" ") || undefined;
  // Likewise, so that the LISTEN connection's name can differ from the pool's.
  const applicationName = parsed.searchParams.get("application_name") || "kmsd";
  parsed.searchParams.delete("application_name");
  return { connectionString: parsed.toString(), schema, options, applicationName };
}
