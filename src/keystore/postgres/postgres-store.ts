import pg from "pg";
import type { CredentialRecord, CredentialState, TokenRecord } from "../access-types.js";
import type {
  AuditBuild,
  AuditHead,
  AuditIndexProblem,
  AuditQuery,
  StoredAuditRecord,
} from "../audit-types.js";
import { applyPatch, isEmptyPatch, planRotation } from "../key-changes.js";
import { decodeMarker, encodeMarker } from "../marker.js";
import {
  KEY_COLUMNS,
  type KeyRow,
  toKeyRecord,
  toVersionRecord,
  VERSION_COLUMNS,
  type VersionRow,
} from "../rows.js";
import type { MetaEntry } from "../transfer-types.js";
import {
  AliasTakenError,
  type KeyChange,
  type KeyPage,
  type KeyPatch,
  type KeyRecord,
  KeyState,
  type KeyVersionRecord,
  type ListKeysQuery,
  type MakeKeyVersion,
  type Store,
} from "../types.js";
import { PgAccessTables } from "./access-tables.js";
import { PgAuditTable } from "./audit-table.js";
import { ChangeNotifications, PgChangeFeed } from "./change-feed.js";
import { clientConfig, createPool, isUniqueViolation, storeError } from "./connection.js";
import { PgDatabase, type Transaction } from "./database.js";
import { type PostgresConnectionOptions, parseDatabaseUrl } from "./database-url.js";
import { migratePostgres } from "./migrations.js";

export type { PostgresConnectionOptions } from "./database-url.js";

export type PostgresStore = Store & {
  /** The schema kmsd's tables are in. */
  readonly schema: string;
};

/**
 * Opens the store: connects, creates the schema named in the URL if
 * missing, applies the migrations (safe when several instances start at
 * once) and returns the store on a connection pool.
 * @throws StoreUnavailableError when PostgreSQL cannot be reached;
 *   SchemaVersionError when the schema was written by a newer kmsd.
 */
export async function openPostgresStore(
  options: PostgresConnectionOptions,
): Promise<PostgresStore> {
  const parsed = parseDatabaseUrl(options.url);
  const config = clientConfig(parsed, options);
  // Migrations run on a connection of their own: closing it releases their
  // session lock whatever happened.
  const client = new pg.Client(config);
  // Errors surface through the awaited calls; this keeps an 'error' event
  // (the server going away) from crashing the process meanwhile.
  client.on("error", () => {});
  let schema: string;
  try {
    await client.connect();
    const [row] = (
      await client.query<{ schema: string | null }>("SELECT current_schema() AS schema")
    ).rows;
    const current = parsed.schema ?? row?.schema;
    if (!current) {
      throw new Error("no schema to create kmsd's tables in: name one with ?schema= in the URL");
    }
    schema = current;
    await migratePostgres(client, schema, parsed.schema !== undefined);
  } catch (error) {
    throw storeError(error);
  } finally {
    await client.end().catch(() => {});
  }
  const db = new PgDatabase(createPool(parsed, options), schema);
  return new PostgresStoreImpl(db, new ChangeNotifications(config, schema));
}

const LIST_FILTER = `project_id = $1
  AND ($2::text IS NULL OR state = $2)
  AND ($3::text IS NULL OR key_spec = $3)`;

const UPDATE_KEY = `UPDATE keys SET state = $3, deletion_at = $4, alias = $5, description = $6,
  rotation_enabled = $7, rotation_interval_days = $8, next_rotation_at = $9
  WHERE project_id = $1 AND key_id = $2`;

function keyValues(key: KeyRecord): unknown[] {
  return [
    key.keyId,
    key.projectId,
    key.alias,
    key.description,
    key.keySpec,
    key.keyUsage,
    key.origin,
    key.enterpriseProjectId,
    key.state,
    key.createdAt,
    key.deletionAt,
    key.primaryVersion,
    key.rotationEnabled,
    key.rotationIntervalDays,
    key.lastRotationAt,
    key.rotationCount,
    key.nextRotationAt,
  ];
}

function versionValues(v: KeyVersionRecord): unknown[] {
  return [v.keyId, v.version, v.wrappedMaterial, v.rootKeyId, v.createdAt];
}

/** Keys live here; credentials, tokens and the audit trail in their own modules. */
class PostgresStoreImpl implements PostgresStore {
  readonly #db: PgDatabase;
  readonly #notifications: ChangeNotifications;
  readonly #changes: PgChangeFeed;
  readonly #access: PgAccessTables;
  readonly #audit: PgAuditTable;

  constructor(db: PgDatabase, notifications: ChangeNotifications) {
    this.#db = db;
    this.#notifications = notifications;
    this.#changes = new PgChangeFeed(db);
    this.#access = new PgAccessTables(db, this.#changes);
    this.#audit = new PgAuditTable(db);
  }

  get schema(): string {
    return this.#db.schema;
  }

  /** Rethrows a unique violation of the alias constraint as AliasTakenError. */
  #checkAlias(error: unknown, alias: string): never {
    if (isUniqueViolation(error, "keys_project_alias")) throw new AliasTakenError(alias);
    throw error;
  }

  async #lockedKey(tx: Transaction, projectId: string, keyId: string) {
    const [row] = await tx.rows<KeyRow>({
      name: "kmsd_lock_key",
      text: `SELECT ${KEY_COLUMNS} FROM keys WHERE project_id = $1 AND key_id = $2 FOR UPDATE`,
      values: [projectId, keyId],
    });
    return row && toKeyRecord(row);
  }

  async #insertVersion(tx: Transaction, version: KeyVersionRecord): Promise<void> {
    await tx.count({
      name: "kmsd_insert_version",
      text: `INSERT INTO key_versions (${VERSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5)`,
      values: versionValues(version),
    });
  }

  async createKey(key: KeyRecord, firstVersion: KeyVersionRecord): Promise<void> {
    await this.importKey(key, [firstVersion]);
  }

  async importKey(key: KeyRecord, versions: readonly KeyVersionRecord[]): Promise<void> {
    await this.#db.transaction(async (tx) => {
      try {
        await tx.count({
          name: "kmsd_insert_key",
          text: `INSERT INTO keys (${KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
            $10, $11, $12, $13, $14, $15, $16, $17)`,
          values: keyValues(key),
        });
      } catch (error) {
        this.#checkAlias(error, key.alias);
      }
      for (const version of versions) await this.#insertVersion(tx, version);
      this.#changes.record(tx, "key", key.projectId, key.keyId);
    });
  }

  // COLLATE "C": byte order, as SQLite sorts, whatever the database's
  // collation; `kmsd store copy` compares stores record by record.
  async scanKeys(afterKeyId: string, limit: number): Promise<KeyRecord[]> {
    const rows = await this.#db.rows<KeyRow>({
      text: `SELECT ${KEY_COLUMNS} FROM keys WHERE key_id COLLATE "C" > $1
        ORDER BY key_id COLLATE "C" LIMIT $2`,
      values: [afterKeyId, limit],
    });
    return rows.map(toKeyRecord);
  }

  async listKeyVersions(keyId: string): Promise<KeyVersionRecord[]> {
    const rows = await this.#db.rows<VersionRow>({
      text: `SELECT ${VERSION_COLUMNS} FROM key_versions WHERE key_id = $1 ORDER BY version`,
      values: [keyId],
    });
    return rows.map(toVersionRecord);
  }

  async listMeta(): Promise<MetaEntry[]> {
    return this.#db.rows<{ name: string; value: string }>({
      text: `SELECT name, value FROM meta ORDER BY name COLLATE "C"`,
    });
  }

  async getKey(projectId: string, keyId: string): Promise<KeyRecord | undefined> {
    const [row] = await this.#db.rows<KeyRow>({
      name: "kmsd_get_key",
      text: `SELECT ${KEY_COLUMNS} FROM keys WHERE project_id = $1 AND key_id = $2`,
      values: [projectId, keyId],
    });
    return row && toKeyRecord(row);
  }

  async getKeyVersion(keyId: string, version: number): Promise<KeyVersionRecord | undefined> {
    const [row] = await this.#db.rows<VersionRow>({
      name: "kmsd_get_version",
      text: `SELECT ${VERSION_COLUMNS} FROM key_versions WHERE key_id = $1 AND version = $2`,
      values: [keyId, version],
    });
    return row && toVersionRecord(row);
  }

  async listKeys(query: ListKeysQuery): Promise<KeyPage> {
    if (!Number.isInteger(query.limit) || query.limit < 1 || query.limit > 1000) {
      throw new RangeError(`limit must be an integer from 1 to 1000, got ${query.limit}`);
    }
    const after = query.marker === undefined ? undefined : decodeMarker(query.marker);
    const filter = [query.projectId, query.state ?? null, query.keySpec ?? null];
    // One snapshot: the page and the total agree.
    const { rows, total } = await this.#db.transaction(
      async (tx) => {
        const rows = await tx.rows<KeyRow>({
          text: `SELECT ${KEY_COLUMNS} FROM keys WHERE ${LIST_FILTER}
            AND ($4::bigint IS NULL OR (created_at, key_id) > ($4, $5))
            ORDER BY created_at, key_id LIMIT $6`,
          // One extra row tells whether another page follows.
          values: [...filter, after?.createdAt ?? null, after?.keyId ?? "", query.limit + 1],
        });
        const [count] = await tx.rows<{ total: number }>({
          text: `SELECT count(*) AS total FROM keys WHERE ${LIST_FILTER}`,
          values: filter,
        });
        return { rows, total: count?.total ?? 0 };
      },
      { snapshot: true },
    );
    const keys = rows.slice(0, query.limit).map(toKeyRecord);
    const last = keys.at(-1);
    if (rows.length <= query.limit || last === undefined) return { keys, total };
    return { keys, total, nextMarker: encodeMarker(last.createdAt, last.keyId) };
  }

  async updateKey(
    projectId: string,
    keyId: string,
    decide: (current: KeyRecord) => KeyPatch,
  ): Promise<KeyRecord | undefined> {
    return this.#db.transaction(async (tx) => {
      const current = await this.#lockedKey(tx, projectId, keyId);
      if (current === undefined) return undefined;
      const patch = decide(current);
      if (isEmptyPatch(patch)) return current;
      const next = applyPatch(current, patch);
      try {
        await tx.count({
          name: "kmsd_update_key",
          text: UPDATE_KEY,
          values: [
            projectId,
            keyId,
            next.state,
            next.deletionAt,
            next.alias,
            next.description,
            next.rotationEnabled,
            next.rotationIntervalDays,
            next.nextRotationAt,
          ],
        });
      } catch (error) {
        this.#checkAlias(error, next.alias);
      }
      this.#changes.record(tx, "key", projectId, keyId);
      return next;
    });
  }

  async destroyDueKeys(now: number): Promise<string[]> {
    return this.#db.transaction(async (tx) => {
      // SKIP LOCKED: keys another sweeper is destroying right now are its
      // to destroy; each due key is destroyed exactly once.
      const due = await tx.rows<{ key_id: string; project_id: string }>({
        text: `SELECT key_id, project_id FROM keys
          WHERE deletion_at <= $1 AND state = '${KeyState.PendingDeletion}'
          ORDER BY deletion_at, key_id FOR UPDATE SKIP LOCKED`,
        values: [now],
      });
      if (due.length === 0) return [];
      const ids = due.map((row) => row.key_id);
      // Versions explicitly, not left to ON DELETE CASCADE alone: material
      // goes with its key whatever the constraint says.
      await tx.count({ text: "DELETE FROM key_versions WHERE key_id = ANY($1)", values: [ids] });
      await tx.count({ text: "DELETE FROM keys WHERE key_id = ANY($1)", values: [ids] });
      for (const row of due) this.#changes.record(tx, "key", row.project_id, row.key_id);
      return ids;
    });
  }

  async rotateKey(
    projectId: string,
    keyId: string,
    now: number,
    makeVersion: MakeKeyVersion,
    check?: (current: KeyRecord) => void,
  ): Promise<KeyRecord | undefined> {
    return this.#db.transaction(async (tx) => {
      const current = await this.#lockedKey(tx, projectId, keyId);
      if (current === undefined) return undefined;
      check?.(current);
      return this.#rotate(tx, current, now, makeVersion);
    });
  }

  async rotateDueKeys(
    now: number,
    makeVersion: MakeKeyVersion,
    limit: number,
  ): Promise<KeyRecord[]> {
    return this.#db.transaction(async (tx) => {
      // Selected and locked together; SKIP LOCKED leaves keys another
      // sweeper holds to it, and once it commits they are no longer due.
      const due = await tx.rows<KeyRow>({
        text: `SELECT ${KEY_COLUMNS} FROM keys
          WHERE next_rotation_at <= $1 AND rotation_enabled AND state = '${KeyState.Enabled}'
          ORDER BY next_rotation_at, key_id LIMIT $2 FOR UPDATE SKIP LOCKED`,
        values: [now, limit],
      });
      const rotated: KeyRecord[] = [];
      for (const row of due)
        rotated.push(await this.#rotate(tx, toKeyRecord(row), now, makeVersion));
      return rotated;
    });
  }

  /** Adds the next version and makes it primary, inside the caller's transaction. */
  async #rotate(
    tx: Transaction,
    current: KeyRecord,
    now: number,
    makeVersion: MakeKeyVersion,
  ): Promise<KeyRecord> {
    const { made, rotated } = planRotation(current, now, makeVersion);
    await this.#insertVersion(tx, made);
    await tx.count({
      name: "kmsd_record_rotation",
      text: `UPDATE keys SET primary_version = $2, last_rotation_at = $3, rotation_count = $4,
        next_rotation_at = $5 WHERE key_id = $1`,
      values: [
        current.keyId,
        rotated.primaryVersion,
        now,
        rotated.rotationCount,
        rotated.nextRotationAt,
      ],
    });
    this.#changes.record(tx, "key", current.projectId, current.keyId);
    return rotated;
  }

  changesSince(afterSeq: number): Promise<KeyChange[]> {
    return this.#changes.since(afterSeq);
  }

  latestChangeSeq(): Promise<number> {
    return this.#changes.latest();
  }

  /** LISTEN/NOTIFY: `wake` runs soon after any instance on this schema commits a change. */
  onChangeRecorded(wake: () => void): () => void {
    return this.#notifications.subscribe(wake);
  }

  async getMeta(name: string): Promise<string | undefined> {
    const [row] = await this.#db.rows<{ value: string }>({
      text: "SELECT value FROM meta WHERE name = $1",
      values: [name],
    });
    return row?.value;
  }

  async setMeta(name: string, value: string): Promise<void> {
    await this.#db.count({
      text: `INSERT INTO meta (name, value) VALUES ($1, $2)
        ON CONFLICT (name) DO UPDATE SET value = excluded.value`,
      values: [name, value],
    });
  }

  async initMeta(name: string, value: string): Promise<string> {
    // Two statements, not one transaction: under READ COMMITTED the read
    // runs after the insert, so it sees the value kept even when another
    // process's insert won (ON CONFLICT waited for it to commit).
    await this.#db.count({
      text: "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
      values: [name, value],
    });
    const kept = await this.getMeta(name);
    if (kept === undefined) throw new Error(`meta ${name} vanished while being initialised`);
    return kept;
  }

  async replaceMeta(name: string, expected: string, value: string): Promise<boolean> {
    const changed = await this.#db.count({
      text: "UPDATE meta SET value = $3 WHERE name = $1 AND value = $2",
      values: [name, expected, value],
    });
    return changed === 1;
  }

  async listVersionsNotWrappedBy(rootKeyId: string, limit: number): Promise<KeyVersionRecord[]> {
    const rows = await this.#db.rows<VersionRow>({
      // Not "<>": the two ranges can use the root_key_id index (migration 2).
      text: `SELECT ${VERSION_COLUMNS} FROM key_versions
        WHERE root_key_id < $1 OR root_key_id > $1 LIMIT $2`,
      values: [rootKeyId, limit],
    });
    return rows.map(toVersionRecord);
  }

  async rewrapKeyVersion(
    keyId: string,
    version: number,
    expectedRootKeyId: string,
    wrappedMaterial: Uint8Array,
    rootKeyId: string,
  ): Promise<boolean> {
    // No change is recorded: the material is the same, so caches stay valid.
    const changed = await this.#db.count({
      text: `UPDATE key_versions SET wrapped_material = $4, root_key_id = $5
        WHERE key_id = $1 AND version = $2 AND root_key_id = $3`,
      values: [keyId, version, expectedRootKeyId, wrappedMaterial, rootKeyId],
    });
    return changed === 1;
  }

  async ping(): Promise<void> {
    await this.#db.rows({ name: "kmsd_ping", text: "SELECT 1" });
  }

  createCredential(credential: CredentialRecord): Promise<void> {
    return this.#access.createCredential(credential);
  }

  getCredential(accessKey: string): Promise<CredentialRecord | undefined> {
    return this.#access.getCredential(accessKey);
  }

  listCredentials(projectId?: string): Promise<CredentialRecord[]> {
    return this.#access.listCredentials(projectId);
  }

  setCredentialState(accessKey: string, state: CredentialState): Promise<boolean> {
    return this.#access.setCredentialState(accessKey, state);
  }

  deleteCredential(accessKey: string): Promise<boolean> {
    return this.#access.deleteCredential(accessKey);
  }

  listCredentialsNotWrappedBy(rootKeyId: string, limit: number): Promise<CredentialRecord[]> {
    return this.#access.listCredentialsNotWrappedBy(rootKeyId, limit);
  }

  rewrapCredential(
    accessKey: string,
    expectedRootKeyId: string,
    wrappedSecret: Uint8Array,
    rootKeyId: string,
  ): Promise<boolean> {
    return this.#access.rewrapCredential(accessKey, expectedRootKeyId, wrappedSecret, rootKeyId);
  }

  createToken(token: TokenRecord): Promise<void> {
    return this.#access.createToken(token);
  }

  getTokenByHash(tokenHash: string): Promise<TokenRecord | undefined> {
    return this.#access.getTokenByHash(tokenHash);
  }

  listTokens(projectId?: string): Promise<TokenRecord[]> {
    return this.#access.listTokens(projectId);
  }

  revokeToken(tokenId: string, now: number): Promise<boolean> {
    return this.#access.revokeToken(tokenId, now);
  }

  appendAudit(build: AuditBuild): Promise<void> {
    return this.#audit.append(build);
  }

  readAudit(query: AuditQuery): Promise<StoredAuditRecord[]> {
    return this.#audit.read(query);
  }

  auditHead(): Promise<AuditHead | undefined> {
    return this.#audit.head();
  }

  auditIndexProblem(): Promise<AuditIndexProblem | undefined> {
    return this.#audit.indexProblem();
  }

  async close(): Promise<void> {
    await this.#notifications.close();
    await this.#db.close();
  }
}
