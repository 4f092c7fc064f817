import type pg from "pg";
import { SchemaVersionError } from "../schema-version-error.js";

export interface PgMigration {
  readonly version: number;
  readonly description: string;
  readonly up: string;
}

/**
 * The PostgreSQL schema, oldest first. Never edit an entry that has
 * shipped: append a new one. Version 1 is what SQLite reached in its
 * migrations 1 to 3; the two schemas hold the same data with the same
 * constraints.
 *
 * Identifier and ordering columns are COLLATE "C": the store orders and
 * compares them bytewise, as SQLite does, whatever the database's collation.
 * Times are epoch milliseconds in BIGINT, as the store's records carry them.
 */
export const PG_MIGRATIONS: readonly PgMigration[] = [
  {
    version: 1,
    description: "keys, versions, change feed, metadata, credentials, tokens, audit trail",
    up: `
      CREATE TABLE keys (
        key_id                 TEXT COLLATE "C" NOT NULL PRIMARY KEY,
        project_id             TEXT COLLATE "C" NOT NULL,
        alias                  TEXT COLLATE "C" NOT NULL,
        description            TEXT    NOT NULL,
        key_spec               TEXT    NOT NULL,
        key_usage              TEXT    NOT NULL,
        origin                 TEXT    NOT NULL,
        enterprise_project_id  TEXT    NOT NULL,
        state                  TEXT    NOT NULL,
        created_at             BIGINT  NOT NULL,
        deletion_at            BIGINT,
        primary_version        INTEGER NOT NULL,
        rotation_enabled       BOOLEAN NOT NULL DEFAULT false,
        rotation_interval_days INTEGER NOT NULL DEFAULT 365
          CHECK (rotation_interval_days BETWEEN 30 AND 365),
        last_rotation_at       BIGINT,
        rotation_count         INTEGER NOT NULL DEFAULT 0 CHECK (rotation_count >= 0),
        -- Set exactly while rotation is enabled: the sweep reads only this column.
        next_rotation_at       BIGINT
          CHECK ((next_rotation_at IS NOT NULL) = rotation_enabled),
        CONSTRAINT keys_project_alias UNIQUE (project_id, alias)
      );

      -- listKeys: one project, keyset-ordered by (created_at, key_id).
      CREATE INDEX keys_project_created ON keys (project_id, created_at, key_id);
      -- destroyDueKeys: only keys pending deletion carry a date.
      CREATE INDEX keys_deletion_at ON keys (deletion_at) WHERE deletion_at IS NOT NULL;
      -- rotateDueKeys: only keys with rotation enabled carry a date.
      CREATE INDEX keys_next_rotation_at ON keys (next_rotation_at)
        WHERE next_rotation_at IS NOT NULL;

      CREATE TABLE key_versions (
        key_id           TEXT COLLATE "C" NOT NULL REFERENCES keys (key_id) ON DELETE CASCADE,
        version          INTEGER NOT NULL,
        wrapped_material BYTEA   NOT NULL,
        root_key_id      TEXT    NOT NULL,
        created_at       BIGINT  NOT NULL,
        PRIMARY KEY (key_id, version)
      );

      -- An identity is never reused, even once old rows are pruned, so a
      -- watcher's position stays meaningful. Rows are appended in seq order
      -- under the feed lock (see change-feed.ts), so no seq commits after a
      -- higher one.
      CREATE TABLE key_changes (
        seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        kind       TEXT   NOT NULL,
        project_id TEXT   NOT NULL,
        key_id     TEXT   NOT NULL,
        changed_at BIGINT NOT NULL
      );

      CREATE TABLE meta (
        name  TEXT COLLATE "C" NOT NULL PRIMARY KEY,
        value TEXT NOT NULL
      );

      CREATE TABLE credentials (
        access_key     TEXT COLLATE "C" NOT NULL PRIMARY KEY,
        project_id     TEXT COLLATE "C" NOT NULL,
        role           TEXT   NOT NULL CHECK (role IN ('admin', 'user')),
        wrapped_secret BYTEA  NOT NULL,
        root_key_id    TEXT   NOT NULL,
        state          TEXT   NOT NULL CHECK (state IN ('enabled', 'disabled')),
        created_at     BIGINT NOT NULL,
        description    TEXT   NOT NULL
      );

      -- listCredentials(projectId): ordered by (created_at, access_key).
      CREATE INDEX credentials_project_created ON credentials (project_id, created_at, access_key);

      CREATE TABLE tokens (
        token_id    TEXT COLLATE "C" NOT NULL PRIMARY KEY,
        token_hash  TEXT COLLATE "C" NOT NULL,
        project_id  TEXT COLLATE "C" NOT NULL,
        role        TEXT   NOT NULL CHECK (role IN ('admin', 'user')),
        created_at  BIGINT NOT NULL,
        expires_at  BIGINT NOT NULL,
        revoked_at  BIGINT,
        description TEXT   NOT NULL,
        CONSTRAINT tokens_hash UNIQUE (token_hash)
      );

      -- listTokens(projectId): ordered by (created_at, token_id).
      CREATE INDEX tokens_project_created ON tokens (project_id, created_at, token_id);

      -- No identity: appendAudit assigns seq = head + 1 itself under the
      -- audit lock, so the chain has no gaps; the primary key refuses a duplicate.
      -- The context is kept as the JSON text hashed (jsonb would reorder keys).
      CREATE TABLE audit_records (
        seq        BIGINT NOT NULL PRIMARY KEY,
        time       BIGINT NOT NULL,
        request_id TEXT   NOT NULL,
        protocol   TEXT   NOT NULL,
        project_id TEXT COLLATE "C" NOT NULL,
        principal  TEXT   NOT NULL,
        operation  TEXT   NOT NULL,
        key_id     TEXT   NOT NULL,
        sequence   TEXT   NOT NULL,
        outcome    TEXT   NOT NULL,
        latency_us BIGINT NOT NULL,
        context    TEXT   NOT NULL CHECK (json_typeof(context::json) = 'object'),
        prev_hash  TEXT   NOT NULL,
        hash       TEXT   NOT NULL
      );

      -- readAudit by project and/or time window.
      CREATE INDEX audit_records_project_time ON audit_records (project_id, time);
      CREATE INDEX audit_records_time ON audit_records (time);
    `,
  },
  {
    version: 2,
    description: "index wrapped material by root key (root key rotation)",
    up: `
      -- listVersionsNotWrappedBy / listCredentialsNotWrappedBy ask for
      -- root_key_id < $1 OR root_key_id > $1 (a bitmap OR over these), so a
      -- rotation's later batches do not rescan what is already rewrapped.
      CREATE INDEX key_versions_root_key_id ON key_versions (root_key_id);
      CREATE INDEX credentials_root_key_id ON credentials (root_key_id);
    `,
  },
  {
    version: 3,
    description: "audit records as sealed JSON text",
    up: `
      -- As SQLite's migration 5: format 2 records are one JSON text each, the
      -- last of every append sealed (src/audit/chain.ts); older records
      -- become format 1, their own hash as their seal. The text is TEXT, not
      -- jsonb: the seal covers it byte for byte. time_bound (the highest time
      -- up to each record) lets a time filter bisect seq without an index on
      -- time; the project index is in the order reads return.
      CREATE TABLE audit_records_v2 (
        seq        BIGINT   NOT NULL PRIMARY KEY,
        time       BIGINT   NOT NULL,
        time_bound BIGINT   NOT NULL,
        project_id TEXT COLLATE "C" NOT NULL,
        record     TEXT     NOT NULL,
        seal       TEXT,
        format     SMALLINT NOT NULL CHECK (format IN (1, 2))
      );

      INSERT INTO audit_records_v2 (seq, time, time_bound, project_id, record, seal, format)
        SELECT seq, time, max(time) OVER (ORDER BY seq), project_id,
          json_build_object(
            'time', time, 'requestId', request_id, 'protocol', protocol,
            'projectId', project_id, 'principal', principal, 'operation', operation,
            'keyId', key_id, 'sequence', sequence, 'outcome', outcome,
            'latencyUs', latency_us, 'context', context::json)::text,
          hash, 1
        FROM audit_records;

      DROP TABLE audit_records;
      ALTER TABLE audit_records_v2 RENAME TO audit_records;
      ALTER INDEX audit_records_v2_pkey RENAME TO audit_records_pkey;
      CREATE INDEX audit_records_project ON audit_records (project_id, seq);
    `,
  },
];

/**
 * Advisory lock classes (the first of the two-int key; the second is the
 * schema's hashtext), so kmsd's locks neither collide with each other nor,
 * likely, with another application's single-key locks.
 */
export const LockClass = {
  Migrations: 0x6b6d_7301,
  ChangeFeed: 0x6b6d_7302,
  AuditChain: 0x6b6d_7303,
} as const;

async function appliedVersions(client: pg.ClientBase): Promise<Set<number>> {
  const exists = await client.query<{ found: boolean }>(
    "SELECT to_regclass('schema_migrations') IS NOT NULL AS found",
  );
  if (exists.rows[0]?.found !== true) return new Set();
  const rows = await client.query<{ version: number }>("SELECT version FROM schema_migrations");
  return new Set(rows.rows.map((row) => row.version));
}

function assertKnown(applied: Set<number>, migrations: readonly PgMigration[]): void {
  const known = new Set(migrations.map((m) => m.version));
  const unknown = [...applied].filter((v) => !known.has(v));
  if (unknown.length > 0) {
    throw new SchemaVersionError(Math.max(...unknown), Math.max(0, ...known));
  }
}

/**
 * Creates the schema if needed and applies the missing migrations, each in
 * its own transaction, all under a session advisory lock on the schema (the
 * caller closes `client` afterwards, which releases it): when
 * several instances start at once, one migrates and the others wait, then
 * find the work done. A schema written by a newer kmsd (a version this code
 * does not know) is refused with SchemaVersionError before anything is
 * written. Returns the versions it applied.
 */
export async function migratePostgres(
  client: pg.ClientBase,
  schema: string,
  createSchema: boolean,
  migrations: readonly PgMigration[] = PG_MIGRATIONS,
): Promise<number[]> {
  // No statement timeout here: indexing a large table, or waiting while
  // another instance does, may take longer than a request's statement should.
  await client.query("SET statement_timeout = 0");
  // A session lock: released when the caller closes this connection, even
  // one that broke halfway.
  await client.query("SELECT pg_advisory_lock($1, hashtext($2))", [LockClass.Migrations, schema]);
  // Checked before the schema or the bookkeeping table is created: a newer
  // schema is left untouched.
  assertKnown(await appliedVersions(client), migrations);
  // The name was checked to be a plain lower-case identifier (connection.ts).
  if (createSchema) await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  await client.query(`
    CREATE TABLE IF NOT EXISTS schema_migrations (
      version     INTEGER NOT NULL PRIMARY KEY,
      description TEXT    NOT NULL,
      applied_at  BIGINT  NOT NULL
    )`);
  const applied = await appliedVersions(client);
  const done: number[] = [];
  for (const migration of migrations) {
    if (applied.has(migration.version)) continue;
    await client.query("BEGIN");
    try {
      await client.query(migration.up);
      await client.query(
        "INSERT INTO schema_migrations (version, description, applied_at) VALUES ($1, $2, $3)",
        [migration.version, migration.description, Date.now()],
      );
      await client.query("COMMIT");
    } catch (error) {
      await client.query("ROLLBACK");
      throw error;
    }
    done.push(migration.version);
  }
  return done;
}
