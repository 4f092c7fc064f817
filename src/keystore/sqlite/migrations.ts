import type Database from "better-sqlite3";
import { SchemaVersionError } from "../schema-version-error.js";

export { SchemaVersionError };

export interface Migration {
  readonly version: number;
  readonly description: string;
  readonly up: string;
}

/**
 * The schema, oldest first. Never edit an entry that has shipped: append a
 * new one (credentials, tokens, audit records, rotation columns, ...).
 *
 * Migrations run with foreign keys off (see migrate), so one that rebuilds a
 * table the SQLite way (create new, copy, drop old, rename) does not cascade
 * deletes into key_versions.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "keys, key versions, change feed, metadata",
    up: `
      CREATE TABLE keys (
        key_id                TEXT    NOT NULL PRIMARY KEY,
        project_id            TEXT    NOT NULL,
        alias                 TEXT    NOT NULL,
        description           TEXT    NOT NULL,
        key_spec              TEXT    NOT NULL,
        key_usage             TEXT    NOT NULL,
        origin                TEXT    NOT NULL,
        enterprise_project_id TEXT    NOT NULL,
        state                 TEXT    NOT NULL,
        created_at            INTEGER NOT NULL,
        deletion_at           INTEGER,
        primary_version       INTEGER NOT NULL,
        CONSTRAINT keys_project_alias UNIQUE (project_id, alias)
      );

      -- listKeys: one project, keyset-ordered by (created_at, key_id).
      CREATE INDEX keys_project_created ON keys (project_id, created_at, key_id);

      -- destroyDueKeys: only keys pending deletion carry a date.
      CREATE INDEX keys_deletion_at ON keys (deletion_at) WHERE deletion_at IS NOT NULL;

      CREATE TABLE key_versions (
        key_id           TEXT    NOT NULL REFERENCES keys (key_id) ON DELETE CASCADE,
        version          INTEGER NOT NULL,
        wrapped_material BLOB    NOT NULL,
        root_key_id      TEXT    NOT NULL,
        created_at       INTEGER NOT NULL,
        PRIMARY KEY (key_id, version)
      );

      -- AUTOINCREMENT: a seq is never reused, even once old rows are pruned,
      -- so a watcher's position stays meaningful.
      CREATE TABLE key_changes (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        project_id TEXT    NOT NULL,
        key_id     TEXT    NOT NULL,
        changed_at INTEGER NOT NULL
      );

      CREATE TABLE meta (
        name  TEXT NOT NULL PRIMARY KEY,
        value TEXT NOT NULL
      );
    `,
  },
  {
    version: 2,
    description: "change kinds, access credentials, tokens, audit trail",
    up: `
      -- Existing rows all describe keys: the default is their kind.
      ALTER TABLE key_changes ADD COLUMN kind TEXT NOT NULL DEFAULT 'key';

      CREATE TABLE credentials (
        access_key     TEXT    NOT NULL PRIMARY KEY,
        project_id     TEXT    NOT NULL,
        role           TEXT    NOT NULL CHECK (role IN ('admin', 'user')),
        wrapped_secret BLOB    NOT NULL,
        root_key_id    TEXT    NOT NULL,
        state          TEXT    NOT NULL CHECK (state IN ('enabled', 'disabled')),
        created_at     INTEGER NOT NULL,
        description    TEXT    NOT NULL
      );

      -- listCredentials(projectId): ordered by (created_at, access_key).
      CREATE INDEX credentials_project_created ON credentials (project_id, created_at, access_key);

      CREATE TABLE tokens (
        token_id    TEXT    NOT NULL PRIMARY KEY,
        token_hash  TEXT    NOT NULL,
        project_id  TEXT    NOT NULL,
        role        TEXT    NOT NULL CHECK (role IN ('admin', 'user')),
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        revoked_at  INTEGER,
        description TEXT    NOT NULL,
        CONSTRAINT tokens_hash UNIQUE (token_hash)
      );

      -- listTokens(projectId): ordered by (created_at, token_id).
      CREATE INDEX tokens_project_created ON tokens (project_id, created_at, token_id);

      -- No AUTOINCREMENT: appendAudit assigns seq = head + 1 itself, under the
      -- write lock, so the chain has no gaps; PRIMARY KEY refuses a duplicate.
      CREATE TABLE audit_records (
        seq        INTEGER PRIMARY KEY,
        time       INTEGER NOT NULL,
        request_id TEXT    NOT NULL,
        protocol   TEXT    NOT NULL,
        project_id TEXT    NOT NULL,
        principal  TEXT    NOT NULL,
        operation  TEXT    NOT NULL,
        key_id     TEXT    NOT NULL,
        sequence   TEXT    NOT NULL,
        outcome    TEXT    NOT NULL,
        latency_us INTEGER NOT NULL,
        context    TEXT    NOT NULL CHECK (json_type(context) = 'object'),
        prev_hash  TEXT    NOT NULL,
        hash       TEXT    NOT NULL
      );

      -- readAudit by project and/or time window.
      CREATE INDEX audit_records_project_time ON audit_records (project_id, time);
      CREATE INDEX audit_records_time ON audit_records (time);
    `,
  },
  {
    version: 3,
    description: "key rotation settings and history",
    up: `
      -- Existing keys: rotation disabled, Huawei's default interval, never rotated.
      ALTER TABLE keys ADD COLUMN rotation_enabled INTEGER NOT NULL DEFAULT 0
        CHECK (rotation_enabled IN (0, 1));
      ALTER TABLE keys ADD COLUMN rotation_interval_days INTEGER NOT NULL DEFAULT 365
        CHECK (rotation_interval_days BETWEEN 30 AND 365);
      ALTER TABLE keys ADD COLUMN last_rotation_at INTEGER;
      ALTER TABLE keys ADD COLUMN rotation_count INTEGER NOT NULL DEFAULT 0
        CHECK (rotation_count >= 0);
      -- Set exactly while rotation is enabled: the sweep reads only this column.
      ALTER TABLE keys ADD COLUMN next_rotation_at INTEGER
        CHECK ((next_rotation_at IS NOT NULL) = (rotation_enabled = 1));

      -- rotateDueKeys: only keys with rotation enabled carry a date.
      CREATE INDEX keys_next_rotation_at ON keys (next_rotation_at)
        WHERE next_rotation_at IS NOT NULL;
    `,
  },
  {
    version: 4,
    description: "root key rotation: find what is wrapped under another root key",
    up: `
      -- listVersionsNotWrappedBy / listCredentialsNotWrappedBy: without an
      -- index each batch of a rotation would scan every row, the rewrapped ones too.
      CREATE INDEX key_versions_root_key ON key_versions (root_key_id);
      CREATE INDEX credentials_root_key ON credentials (root_key_id);
    `,
  },
  {
    version: 5,
    description: "audit records as sealed JSON text",
    up: `
      -- Format 2 (src/audit/chain.ts): each record is one JSON text, and the
      -- last record of every append carries the seal. Older records become
      -- format 1: the same fields as JSON, their own hash as their seal.
      -- time_bound is the highest time up to each record: it never decreases
      -- along seq, so a time filter bisects seq instead of paying for an
      -- index on time on every append. The project index is on (project_id,
      -- seq), the order every read returns.
      CREATE TABLE audit_records_v2 (
        seq        INTEGER PRIMARY KEY,
        time       INTEGER NOT NULL,
        time_bound INTEGER NOT NULL,
        project_id TEXT    NOT NULL,
        record     TEXT    NOT NULL,
        seal       TEXT,
        format     INTEGER NOT NULL CHECK (format IN (1, 2))
      );

      INSERT INTO audit_records_v2 (seq, time, time_bound, project_id, record, seal, format)
        SELECT seq, time, max(time) OVER (ORDER BY seq), project_id,
          json_object(
            'time', time, 'requestId', request_id, 'protocol', protocol,
            'projectId', project_id, 'principal', principal, 'operation', operation,
            'keyId', key_id, 'sequence', sequence, 'outcome', outcome,
            'latencyUs', latency_us, 'context', json(context)),
          hash, 1
        FROM audit_records;

      DROP TABLE audit_records;
      ALTER TABLE audit_records_v2 RENAME TO audit_records;
      CREATE INDEX audit_records_project ON audit_records (project_id, seq);
    `,
  },
  {
    version: 6,
    description: "audit records stored as runs, one row per append",
    up: `
      -- See src/keystore/sqlite/audit-appends.ts. A row holds consecutive
      -- records of one format, their texts joined by newlines; only its last
      -- record may carry a seal. The records and seals are kept byte for
      -- byte: existing records are grouped the way appends pack them (a row
      -- ends at a sealed record, a change of format or a gap in seq), so
      -- what verified before verifies after, and what did not still fails
      -- at the same record.
      CREATE TABLE audit_appends (
        last_seq   INTEGER PRIMARY KEY,
        first_seq  INTEGER NOT NULL CHECK (first_seq <= last_seq),
        time_bound INTEGER NOT NULL,
        format     INTEGER NOT NULL CHECK (format IN (1, 2)),
        records    TEXT    NOT NULL,
        seal       TEXT
      );

      -- Every row holding a record of a project: reads by project follow it.
      CREATE TABLE audit_append_projects (
        project_id TEXT    NOT NULL,
        last_seq   INTEGER NOT NULL,
        PRIMARY KEY (project_id, last_seq)
      ) WITHOUT ROWID;

      CREATE TEMP TABLE audit_runs AS
        WITH marked AS (
          SELECT seq, time_bound, project_id, record, seal, format,
            CASE WHEN seq = lag(seq) OVER byseq + 1
                   AND lag(seal) OVER byseq IS NULL
                   AND lag(format) OVER byseq = format
                 THEN 0 ELSE 1 END AS starts_run
          FROM audit_records
          WINDOW byseq AS (ORDER BY seq)
        )
        SELECT seq, time_bound, project_id, record, seal, format,
          sum(starts_run) OVER (ORDER BY seq) AS run
        FROM marked;

      INSERT INTO audit_appends (last_seq, first_seq, time_bound, format, records, seal)
        SELECT max(seq), min(seq), max(time_bound), min(format),
          -- kmsd never writes a raw newline in a text (JSON escapes it); a
          -- text edited to hold one between tokens gets a space instead, so
          -- that it stays one record and still fails its seal as before.
          group_concat(replace(record, char(10), ' '), char(10) ORDER BY seq),
          -- A seal ends its run: the last record's is the only one.
          max(seal)
        FROM audit_runs
        GROUP BY run;

      INSERT INTO audit_append_projects (project_id, last_seq)
        SELECT DISTINCT project_id, max(seq) OVER (PARTITION BY run)
        FROM audit_runs;

      DROP TABLE audit_runs;
      DROP TABLE audit_records;
    `,
  },
];

const CREATE_MIGRATIONS_TABLE = `
  CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER NOT NULL PRIMARY KEY,
    description TEXT    NOT NULL,
    applied_at  INTEGER NOT NULL
  )`;

function appliedVersions(db: Database.Database): Set<number> {
  const table = db
    .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
    .get();
  if (table === undefined) return new Set();
  const rows = db.prepare<[], number>("SELECT version FROM schema_migrations").pluck().all();
  return new Set(rows);
}

/**
 * Throws SchemaVersionError when the file holds a version the code does not
 * know. Only reads, so it can run before anything touches the file.
 */
export function assertKnownSchema(
  db: Database.Database,
  migrations: readonly Migration[] = MIGRATIONS,
): Set<number> {
  const applied = appliedVersions(db);
  const known = new Set(migrations.map((m) => m.version));
  const unknown = [...applied].filter((v) => !known.has(v));
  if (unknown.length > 0) {
    throw new SchemaVersionError(Math.max(...unknown), Math.max(0, ...known));
  }
  return applied;
}

/**
 * Applies the missing migrations, each in its own IMMEDIATE transaction that
 * re-reads what is applied: when several processes open a fresh file at once,
 * one migrates and the others find the work done.
 *
 * Must be called with foreign keys off (the pragma is a no-op inside a
 * transaction); each migration is checked with foreign_key_check instead.
 * Returns the versions it applied.
 */
export function migrate(
  db: Database.Database,
  migrations: readonly Migration[] = MIGRATIONS,
): number[] {
  const done: number[] = [];
  for (const migration of migrations) {
    db.transaction(() => {
      db.exec(CREATE_MIGRATIONS_TABLE);
      if (assertKnownSchema(db, migrations).has(migration.version)) return;
      db.exec(migration.up);
      const violation = db.pragma("foreign_key_check", { simple: true });
      if (violation !== undefined) {
        throw new Error(`migration ${migration.version} left rows violating a foreign key`);
      }
      db.prepare(
        "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
      ).run(migration.version, migration.description, Date.now());
      done.push(migration.version);
    }).immediate();
  }
  return done;
}
