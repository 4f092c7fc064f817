import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type BetterSqlite3 from "better-sqlite3";
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
import { AccessTables } from "./access-tables.js";
import { AuditTable, openAuditConnection } from "./audit-table.js";
import { ChangeFeed } from "./change-feed.js";
import { BackgroundCheckpointer, SAFETY_AUTOCHECKPOINT_PAGES } from "./checkpointer.js";
import { openSqliteDatabase, sqliteDriver } from "./driver.js";
import { assertKnownSchema, migrate } from "./migrations.js";
import { isConstraintViolation, retryWhileBusy, writeTransaction } from "./sql.js";

export interface SqliteStoreOptions {
  readonly dataDir: string;
  /** Defaults to "kmsd.db". */
  readonly fileName?: string;
  /**
   * "bulk" skips the fsync of each commit, for tools that load many keys at
   * once and can start over if the machine fails meanwhile (the benchmark's
   * seeding). The server and the CLI always use the default, "durable".
   */
  readonly durability?: "durable" | "bulk";
  /**
   * Checkpoint the WAL on a worker thread rather than in the commit that
   * fills it (see checkpointer.ts): for the server, whose audit appends would
   * otherwise stall requests. Short-lived CLI runs leave it off.
   */
  readonly backgroundCheckpoints?: boolean;
}

/** How often the background checkpointer copies the WAL into the database. */
const CHECKPOINT_INTERVAL_MS = 200;

export type SqliteStore = Store & { readonly path: string };

/** How long a statement waits for another process's write lock before SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5000;

export async function openSqliteStore(options: SqliteStoreOptions): Promise<SqliteStore> {
  // Before anything touches the disk: on a Node.js without its driver, say so.
  sqliteDriver();
  await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
  const path = join(options.dataDir, options.fileName ?? "kmsd.db");
  const db = openSqliteDatabase(path, { timeout: BUSY_TIMEOUT_MS });
  let auditDb: BetterSqlite3.Database | undefined;
  try {
    // Before any pragma that writes the file: a newer schema is left untouched.
    assertKnownSchema(db);
    const mode = await retryWhileBusy(
      () => db.pragma("journal_mode = WAL", { simple: true }),
      BUSY_TIMEOUT_MS,
    );
    if (mode !== "wal") throw new Error(`${path}: cannot use WAL journal mode (got ${mode})`);
    // FULL: in WAL mode NORMAL may lose the last commits on power loss, and a
    // client told that a key exists must be able to decrypt with it later (an
    // access key handed out must keep working likewise). Audit appends use
    // their own, cheaper connection: see openAuditConnection.
    db.pragma(options.durability === "bulk" ? "synchronous = OFF" : "synchronous = FULL");
    migrate(db);
    db.pragma("foreign_keys = ON");
    auditDb = openAuditConnection(path, BUSY_TIMEOUT_MS);
    let checkpointer: BackgroundCheckpointer | undefined;
    if (options.backgroundCheckpoints === true) {
      for (const connection of [db, auditDb]) {
        connection.pragma(`wal_autocheckpoint = ${SAFETY_AUTOCHECKPOINT_PAGES}`);
      }
      checkpointer = BackgroundCheckpointer.start(path, CHECKPOINT_INTERVAL_MS, BUSY_TIMEOUT_MS);
    }
    return new SqliteStoreImpl(db, auditDb, path, checkpointer);
  } catch (error) {
    auditDb?.close();
    db.close();
    throw error;
  }
}

/**
 * Test-only: the store's two connections, so tests can check how each is
 * configured. Not part of Store; production code must not use it.
 */
export function connectionsForTesting(store: SqliteStore): {
  main: BetterSqlite3.Database;
  audit: BetterSqlite3.Database;
} {
  if (!(store instanceof SqliteStoreImpl)) throw new TypeError("not a store from openSqliteStore");
  return SqliteStoreImpl.connections(store);
}

type KeyParams = ReturnType<typeof keyParams>;

type UpdateParams = Pick<
  KeyParams,
  | "state"
  | "deletionAt"
  | "alias"
  | "description"
  | "rotationEnabled"
  | "rotationIntervalDays"
  | "nextRotationAt"
  | "projectId"
  | "keyId"
>;

interface ListParams {
  projectId: string;
  state: string | null;
  keySpec: string | null;
  limit: number;
  afterCreatedAt: number;
  afterKeyId: string;
}

const LIST_FILTER = `project_id = @projectId
  AND (@state IS NULL OR state = @state)
  AND (@keySpec IS NULL OR key_spec = @keySpec)`;

function keyParams(key: KeyRecord) {
  return {
    keyId: key.keyId,
    projectId: key.projectId,
    alias: key.alias,
    description: key.description,
    keySpec: key.keySpec,
    keyUsage: key.keyUsage,
    origin: key.origin,
    enterpriseProjectId: key.enterpriseProjectId,
    state: key.state,
    createdAt: key.createdAt,
    deletionAt: key.deletionAt,
    primaryVersion: key.primaryVersion,
    rotationEnabled: key.rotationEnabled ? 1 : 0,
    rotationIntervalDays: key.rotationIntervalDays,
    lastRotationAt: key.lastRotationAt,
    rotationCount: key.rotationCount,
    nextRotationAt: key.nextRotationAt,
  };
}

/**
 * Keys live here; credentials, tokens and the audit trail in their own
 * modules, which this class delegates to.
 */
class SqliteStoreImpl implements SqliteStore {
  readonly #db: BetterSqlite3.Database;
  readonly #auditDb: BetterSqlite3.Database;
  readonly #checkpointer: BackgroundCheckpointer | undefined;
  readonly #changes: ChangeFeed;
  readonly #access: AccessTables;
  readonly #audit: AuditTable;
  readonly #sql;

  /** For connectionsForTesting: private fields are only reachable from inside the class. */
  static connections(store: SqliteStoreImpl) {
    return { main: store.#db, audit: store.#auditDb };
  }

  constructor(
    db: BetterSqlite3.Database,
    auditDb: BetterSqlite3.Database,
    readonly path: string,
    checkpointer: BackgroundCheckpointer | undefined,
  ) {
    this.#db = db;
    this.#auditDb = auditDb;
    this.#checkpointer = checkpointer;
    this.#changes = new ChangeFeed(db);
    this.#access = new AccessTables(db, this.#changes);
    this.#audit = new AuditTable(auditDb);
    this.#sql = {
      getKey: db.prepare<[string, string], KeyRow>(
        `SELECT ${KEY_COLUMNS} FROM keys WHERE project_id = ? AND key_id = ?`,
      ),
      aliasTaken: db.prepare<[string, string]>(
        "SELECT 1 FROM keys WHERE project_id = ? AND alias = ?",
      ),
      insertKey: db.prepare<ReturnType<typeof keyParams>>(
        `INSERT INTO keys (${KEY_COLUMNS}) VALUES (@keyId, @projectId, @alias, @description,
          @keySpec, @keyUsage, @origin, @enterpriseProjectId, @state, @createdAt, @deletionAt,
          @primaryVersion, @rotationEnabled, @rotationIntervalDays, @lastRotationAt,
          @rotationCount, @nextRotationAt)`,
      ),
      updateKey: db.prepare<UpdateParams>(
        `UPDATE keys SET state = @state, deletion_at = @deletionAt, alias = @alias,
          description = @description, rotation_enabled = @rotationEnabled,
          rotation_interval_days = @rotationIntervalDays, next_rotation_at = @nextRotationAt
          WHERE project_id = @projectId AND key_id = @keyId`,
      ),
      recordRotation: db.prepare<[number, number, number, number | null, string]>(
        `UPDATE keys SET primary_version = ?, last_rotation_at = ?, rotation_count = ?,
          next_rotation_at = ? WHERE key_id = ?`,
      ),
      dueRotations: db.prepare<[number, number], KeyRow>(
        `SELECT ${KEY_COLUMNS} FROM keys
          WHERE next_rotation_at <= ? AND rotation_enabled = 1 AND state = '${KeyState.Enabled}'
          ORDER BY next_rotation_at, key_id LIMIT ?`,
      ),
      insertVersion: db.prepare<[string, number, Uint8Array, string, number]>(
        `INSERT INTO key_versions (key_id, version, wrapped_material, root_key_id, created_at)
          VALUES (?, ?, ?, ?, ?)`,
      ),
      getVersion: db.prepare<[string, number], VersionRow>(
        `SELECT ${VERSION_COLUMNS} FROM key_versions WHERE key_id = ? AND version = ?`,
      ),
      listFirst: db.prepare<ListParams, KeyRow>(
        `SELECT ${KEY_COLUMNS} FROM keys WHERE ${LIST_FILTER}
          ORDER BY created_at, key_id LIMIT @limit`,
      ),
      listAfter: db.prepare<ListParams, KeyRow>(
        `SELECT ${KEY_COLUMNS} FROM keys WHERE ${LIST_FILTER}
          AND (created_at, key_id) > (@afterCreatedAt, @afterKeyId)
          ORDER BY created_at, key_id LIMIT @limit`,
      ),
      countKeys: db
        .prepare<ListParams, number>(`SELECT count(*) FROM keys WHERE ${LIST_FILTER}`)
        .pluck(),
      dueKeys: db.prepare<[number], { key_id: string; project_id: string }>(
        `SELECT key_id, project_id FROM keys
          WHERE deletion_at <= ? AND state = '${KeyState.PendingDeletion}'
          ORDER BY deletion_at, key_id`,
      ),
      deleteVersions: db.prepare<[string]>("DELETE FROM key_versions WHERE key_id = ?"),
      deleteKey: db.prepare<[string]>("DELETE FROM keys WHERE key_id = ?"),
      getMeta: db.prepare<[string], string>("SELECT value FROM meta WHERE name = ?").pluck(),
      setMeta: db.prepare<[string, string]>(
        `INSERT INTO meta (name, value) VALUES (?, ?)
          ON CONFLICT (name) DO UPDATE SET value = excluded.value`,
      ),
      initMeta: db.prepare<[string, string]>(
        "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
      ),
      replaceMeta: db.prepare<[string, string, string]>(
        "UPDATE meta SET value = ? WHERE name = ? AND value = ?",
      ),
      // Two ranges rather than <>, so that SQLite can use key_versions_root_key.
      versionsNotWrappedBy: db.prepare<{ rootKeyId: string; limit: number }, VersionRow>(
        `SELECT key_id, version, wrapped_material, root_key_id, created_at FROM key_versions
          WHERE root_key_id < @rootKeyId OR root_key_id > @rootKeyId LIMIT @limit`,
      ),
      rewrapVersion: db.prepare<[Uint8Array, string, string, number, string]>(
        `UPDATE key_versions SET wrapped_material = ?, root_key_id = ?
          WHERE key_id = ? AND version = ? AND root_key_id = ?`,
      ),
      ping: db.prepare<[]>("SELECT 1").pluck(),
      scanKeys: db.prepare<[string, number], KeyRow>(
        `SELECT ${KEY_COLUMNS} FROM keys WHERE key_id > ? ORDER BY key_id LIMIT ?`,
      ),
      listVersions: db.prepare<[string], VersionRow>(
        `SELECT key_id, version, wrapped_material, root_key_id, created_at
          FROM key_versions WHERE key_id = ? ORDER BY version`,
      ),
      listMeta: db.prepare<[], MetaEntry>("SELECT name, value FROM meta ORDER BY name"),
    };
  }

  #write<T>(fn: () => T): T {
    return writeTransaction(this.#db, fn);
  }

  #recordChange(projectId: string, keyId: string): void {
    this.#changes.record("key", projectId, keyId);
  }

  /** Rethrows a UNIQUE violation caused by the alias as AliasTakenError. */
  #checkAlias(error: unknown, projectId: string, alias: string): never {
    if (
      isConstraintViolation(error, "UNIQUE") &&
      this.#sql.aliasTaken.get(projectId, alias) !== undefined
    ) {
      throw new AliasTakenError(alias);
    }
    throw error;
  }

  async createKey(key: KeyRecord, firstVersion: KeyVersionRecord): Promise<void> {
    await this.importKey(key, [firstVersion]);
  }

  async getKey(projectId: string, keyId: string): Promise<KeyRecord | undefined> {
    const row = this.#sql.getKey.get(projectId, keyId);
    return row && toKeyRecord(row);
  }

  async getKeyVersion(keyId: string, version: number): Promise<KeyVersionRecord | undefined> {
    const row = this.#sql.getVersion.get(keyId, version);
    return row && toVersionRecord(row);
  }

  async listKeys(query: ListKeysQuery): Promise<KeyPage> {
    if (!Number.isInteger(query.limit) || query.limit < 1 || query.limit > 1000) {
      throw new RangeError(`limit must be an integer from 1 to 1000, got ${query.limit}`);
    }
    const after = query.marker === undefined ? undefined : decodeMarker(query.marker);
    const params: ListParams = {
      projectId: query.projectId,
      state: query.state ?? null,
      keySpec: query.keySpec ?? null,
      // One extra row tells whether another page follows.
      limit: query.limit + 1,
      afterCreatedAt: after?.createdAt ?? 0,
      afterKeyId: after?.keyId ?? "",
    };
    // One read transaction: the page and the total come from the same snapshot.
    const { rows, total } = this.#db.transaction(() => ({
      rows: (after ? this.#sql.listAfter : this.#sql.listFirst).all(params),
      total: this.#sql.countKeys.get(params) ?? 0,
    }))();
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
    return this.#write(() => {
      const row = this.#sql.getKey.get(projectId, keyId);
      if (row === undefined) return undefined;
      const current = toKeyRecord(row);
      const patch = decide(current);
      if (isEmptyPatch(patch)) return current;
      const next = applyPatch(current, patch);
      try {
        const params = keyParams(next);
        this.#sql.updateKey.run({
          state: params.state,
          deletionAt: params.deletionAt,
          alias: params.alias,
          description: params.description,
          rotationEnabled: params.rotationEnabled,
          rotationIntervalDays: params.rotationIntervalDays,
          nextRotationAt: params.nextRotationAt,
          projectId,
          keyId,
        });
      } catch (error) {
        this.#checkAlias(error, projectId, next.alias);
      }
      this.#recordChange(projectId, keyId);
      return next;
    });
  }

  async destroyDueKeys(now: number): Promise<string[]> {
    return this.#write(() => {
      const due = this.#sql.dueKeys.all(now);
      for (const { key_id, project_id } of due) {
        // Explicit, not left to ON DELETE CASCADE: a connection opened without
        // foreign_keys=ON (e.g. the sqlite3 shell) must not orphan material.
        this.#sql.deleteVersions.run(key_id);
        this.#sql.deleteKey.run(key_id);
        this.#recordChange(project_id, key_id);
      }
      return due.map((row) => row.key_id);
    });
  }

  async rotateKey(
    projectId: string,
    keyId: string,
    now: number,
    makeVersion: MakeKeyVersion,
    check?: (current: KeyRecord) => void,
  ): Promise<KeyRecord | undefined> {
    return this.#write(() => {
      const row = this.#sql.getKey.get(projectId, keyId);
      if (row === undefined) return undefined;
      const current = toKeyRecord(row);
      check?.(current);
      return this.#rotate(current, now, makeVersion);
    });
  }

  async rotateDueKeys(
    now: number,
    makeVersion: MakeKeyVersion,
    limit: number,
  ): Promise<KeyRecord[]> {
    // Selected and rotated under one write lock: another sweeper waits for
    // it, then finds these keys no longer due.
    return this.#write(() =>
      this.#sql.dueRotations
        .all(now, limit)
        .map((row) => this.#rotate(toKeyRecord(row), now, makeVersion)),
    );
  }

  /** Adds the next version and makes it primary; runs inside the caller's write transaction. */
  #rotate(current: KeyRecord, now: number, makeVersion: MakeKeyVersion): KeyRecord {
    const { made, rotated } = planRotation(current, now, makeVersion);
    this.#sql.insertVersion.run(
      made.keyId,
      made.version,
      made.wrappedMaterial,
      made.rootKeyId,
      made.createdAt,
    );
    this.#sql.recordRotation.run(
      rotated.primaryVersion,
      now,
      rotated.rotationCount,
      rotated.nextRotationAt,
      current.keyId,
    );
    this.#recordChange(current.projectId, current.keyId);
    return rotated;
  }

  async scanKeys(afterKeyId: string, limit: number): Promise<KeyRecord[]> {
    return this.#sql.scanKeys.all(afterKeyId, limit).map(toKeyRecord);
  }

  async listKeyVersions(keyId: string): Promise<KeyVersionRecord[]> {
    return this.#sql.listVersions.all(keyId).map(toVersionRecord);
  }

  async listMeta(): Promise<MetaEntry[]> {
    return this.#sql.listMeta.all();
  }

  async importKey(key: KeyRecord, versions: readonly KeyVersionRecord[]): Promise<void> {
    this.#write(() => {
      try {
        this.#sql.insertKey.run(keyParams(key));
      } catch (error) {
        this.#checkAlias(error, key.projectId, key.alias);
      }
      for (const v of versions) {
        this.#sql.insertVersion.run(
          v.keyId,
          v.version,
          v.wrappedMaterial,
          v.rootKeyId,
          v.createdAt,
        );
      }
      this.#recordChange(key.projectId, key.keyId);
    });
  }

  async changesSince(afterSeq: number): Promise<KeyChange[]> {
    return this.#changes.since(afterSeq);
  }

  async latestChangeSeq(): Promise<number> {
    return this.#changes.latest();
  }

  async getMeta(name: string): Promise<string | undefined> {
    return this.#sql.getMeta.get(name);
  }

  async setMeta(name: string, value: string): Promise<void> {
    this.#sql.setMeta.run(name, value);
  }

  async initMeta(name: string, value: string): Promise<string> {
    // Insert and read back under one write lock: the value read is the one kept.
    return this.#write(() => {
      this.#sql.initMeta.run(name, value);
      const kept = this.#sql.getMeta.get(name);
      if (kept === undefined) throw new Error(`meta ${name} vanished while being initialised`);
      return kept;
    });
  }

  async replaceMeta(name: string, expected: string, value: string): Promise<boolean> {
    return this.#sql.replaceMeta.run(value, name, expected).changes === 1;
  }

  async listVersionsNotWrappedBy(rootKeyId: string, limit: number): Promise<KeyVersionRecord[]> {
    return this.#sql.versionsNotWrappedBy.all({ rootKeyId, limit }).map(toVersionRecord);
  }

  // One statement, atomic on its own; no change-feed entry: the material is the same.
  async rewrapKeyVersion(
    keyId: string,
    version: number,
    expectedRootKeyId: string,
    wrappedMaterial: Uint8Array,
    rootKeyId: string,
  ): Promise<boolean> {
    const { changes } = this.#sql.rewrapVersion.run(
      wrappedMaterial,
      rootKeyId,
      keyId,
      version,
      expectedRootKeyId,
    );
    return changes === 1;
  }

  async ping(): Promise<void> {
    this.#sql.ping.get();
  }

  async createCredential(credential: CredentialRecord): Promise<void> {
    this.#access.createCredential(credential);
  }

  async getCredential(accessKey: string): Promise<CredentialRecord | undefined> {
    return this.#access.getCredential(accessKey);
  }

  async listCredentials(projectId?: string): Promise<CredentialRecord[]> {
    return this.#access.listCredentials(projectId);
  }

  async setCredentialState(accessKey: string, state: CredentialState): Promise<boolean> {
    return this.#access.setCredentialState(accessKey, state);
  }

  async deleteCredential(accessKey: string): Promise<boolean> {
    return this.#access.deleteCredential(accessKey);
  }

  async listCredentialsNotWrappedBy(rootKeyId: string, limit: number): Promise<CredentialRecord[]> {
    return this.#access.listCredentialsNotWrappedBy(rootKeyId, limit);
  }

  async rewrapCredential(
    accessKey: string,
    expectedRootKeyId: string,
    wrappedSecret: Uint8Array,
    rootKeyId: string,
  ): Promise<boolean> {
    return this.#access.rewrapCredential(accessKey, expectedRootKeyId, wrappedSecret, rootKeyId);
  }

  async createToken(token: TokenRecord): Promise<void> {
    this.#access.createToken(token);
  }

  async getTokenByHash(tokenHash: string): Promise<TokenRecord | undefined> {
    return this.#access.getTokenByHash(tokenHash);
  }

  async listTokens(projectId?: string): Promise<TokenRecord[]> {
    return this.#access.listTokens(projectId);
  }

  async revokeToken(tokenId: string, now: number): Promise<boolean> {
    return this.#access.revokeToken(tokenId, now);
  }

  async appendAudit(build: AuditBuild): Promise<void> {
    this.#audit.append(build);
  }

  async readAudit(query: AuditQuery): Promise<StoredAuditRecord[]> {
    return this.#audit.read(query);
  }

  async auditHead(): Promise<AuditHead | undefined> {
    return this.#audit.head();
  }

  async auditIndexProblem(): Promise<AuditIndexProblem | undefined> {
    return this.#audit.indexProblem();
  }

  async close(): Promise<void> {
    if (this.#auditDb.open) this.#auditDb.close();
    if (this.#db.open) this.#db.close();
    await this.#checkpointer?.stop();
  }
}
