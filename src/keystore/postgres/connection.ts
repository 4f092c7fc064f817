import pg from "pg";
import { StoreUnavailableError } from "../store-unavailable.js";
import type { ParsedDatabaseUrl, PostgresConnectionOptions } from "./database-url.js";

/**
 * Small: requests on cached keys need no connection, audit appends take one
 * at a time, and with --workers every process (on every instance) has a pool.
 */
export const DEFAULT_POOL_SIZE = 5;
const DEFAULT_CONNECT_TIMEOUT_MS = 2000;
const DEFAULT_STATEMENT_TIMEOUT_MS = 10_000;
/** Idle pooled connections are closed after this, so a quiet instance holds few. */
const IDLE_TIMEOUT_MS = 30_000;

/** BIGINT columns (epoch milliseconds, sequence numbers) as numbers, refusing unsafe ones. */
function parseInt8(text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new RangeError(`BIGINT ${text} is not a safe integer`);
  return value;
}

// pg's getTypeParser is overloaded on the format; this one keeps its
// signature and only answers BIGINT differently (the cast restores the overloads).
const types = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === pg.types.builtins.INT8
      ? parseInt8
      : pg.types.getTypeParser(oid, format ?? "text")) as typeof pg.types.getTypeParser,
};

/** The configuration of every connection kmsd opens (pooled and LISTEN). */
export function clientConfig(
  parsed: ParsedDatabaseUrl,
  options: PostgresConnectionOptions,
): pg.ClientConfig {
  return {
    connectionString: parsed.connectionString,
    options: parsed.options,
    types,
    application_name: parsed.applicationName,
    connectionTimeoutMillis: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    statement_timeout: options.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  };
}

export function createPool(parsed: ParsedDatabaseUrl, options: PostgresConnectionOptions): pg.Pool {
  const pool = new pg.Pool({
    ...clientConfig(parsed, options),
    max: options.poolSize ?? DEFAULT_POOL_SIZE,
    idleTimeoutMillis: IDLE_TIMEOUT_MS,
  });
  // An idle connection the server closed (restart, pg_terminate_backend)
  // errors here; the pool has already dropped it and opens another when
  // needed. Without a listener the error would crash the process.
  pool.on("error", () => {});
  return pool;
}

/** Node's codes for a connection that could not be made or broke. */
const NETWORK_CODES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EHOSTDOWN",
]);

/**
 * SQLSTATEs after which trying again later may succeed: connection
 * exceptions (class 08), the server shutting down or starting (57P01-57P03),
 * too many connections, a statement cancelled by statement_timeout, and the
 * transient conflicts (serialization failure, deadlock).
 */
function isTransientSqlState(code: string): boolean {
  return (
    code.startsWith("08") ||
    ["57P01", "57P02", "57P03", "57014", "53300", "40001", "40P01"].includes(code)
  );
}

/** What pg and pg-pool say when a connection fails or is gone (they set no code). */
const CONNECTION_MESSAGES = [
  "Connection terminated",
  "timeout exceeded when trying to connect",
  "is not queryable",
  "Query read timeout",
];

export function isConnectionFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && (NETWORK_CODES.has(code) || isTransientSqlState(code))) {
    return true;
  }
  // Several addresses (IPv4 and IPv6 for localhost) fail together.
  if (error instanceof AggregateError) return error.errors.some(isConnectionFailure);
  return CONNECTION_MESSAGES.some((text) => error.message.includes(text));
}

/** The error to answer: a connection failure becomes StoreUnavailableError, anything else passes. */
export function storeError(error: unknown): unknown {
  if (error instanceof StoreUnavailableError || !isConnectionFailure(error)) return error;
  const message = error instanceof Error ? error.message || error.name : String(error);
  return new StoreUnavailableError(message, { cause: error });
}

/** The SQLSTATE and constraint of a PostgreSQL error, if it is one. */
export function pgErrorInfo(error: unknown): { code?: string; constraint?: string } {
  if (!(error instanceof Error)) return {};
  const { code, constraint } = error as { code?: unknown; constraint?: unknown };
  return {
    code: typeof code === "string" ? code : undefined,
    constraint: typeof constraint === "string" ? constraint : undefined,
  };
}

/** unique_violation on the named constraint. */
export function isUniqueViolation(error: unknown, constraint: string): boolean {
  const info = pgErrorInfo(error);
  return info.code === "23505" && info.constraint === constraint;
}
