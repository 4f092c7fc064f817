/**
 * Rows as the SQL backends read them (the same column names in SQLite and
 * PostgreSQL) and their conversion to the store's records, checked the same
 * way whichever backend answered. The column types differ only where the
 * databases do: SQLite has no boolean (0/1) and hands blobs out as Buffers.
 */
import {
  type CredentialRecord,
  CredentialState,
  type Role,
  type TokenRecord,
} from "./access-types.js";
import type { StoredAuditRecord } from "./audit-types.js";
import {
  type ChangeKind,
  type KeyChange,
  type KeyRecord,
  KeyState,
  type KeyVersionRecord,
} from "./types.js";

export interface KeyRow {
  key_id: string;
  project_id: string;
  alias: string;
  description: string;
  key_spec: string;
  key_usage: string;
  origin: string;
  enterprise_project_id: string;
  state: string;
  created_at: number;
  deletion_at: number | null;
  primary_version: number;
  /** 0/1 in SQLite, a boolean in PostgreSQL. */
  rotation_enabled: number | boolean;
  rotation_interval_days: number;
  last_rotation_at: number | null;
  rotation_count: number;
  next_rotation_at: number | null;
}

export interface VersionRow {
  key_id: string;
  version: number;
  wrapped_material: Uint8Array;
  root_key_id: string;
  created_at: number;
}

export interface CredentialRow {
  access_key: string;
  project_id: string;
  role: string;
  wrapped_secret: Uint8Array;
  root_key_id: string;
  state: string;
  created_at: number;
  description: string;
}

export interface TokenRow {
  token_id: string;
  token_hash: string;
  project_id: string;
  role: string;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
  description: string;
}

export interface AuditRow {
  seq: number;
  time: number;
  project_id: string;
  record: string;
  seal: string | null;
  format: number;
}

export interface ChangeRow {
  seq: number;
  kind: string;
  project_id: string;
  key_id: string;
}

export const KEY_COLUMNS = `key_id, project_id, alias, description, key_spec, key_usage, origin,
  enterprise_project_id, state, created_at, deletion_at, primary_version, rotation_enabled,
  rotation_interval_days, last_rotation_at, rotation_count, next_rotation_at`;

export const VERSION_COLUMNS = "key_id, version, wrapped_material, root_key_id, created_at";

export const CREDENTIAL_COLUMNS = `access_key, project_id, role, wrapped_secret, root_key_id, state,
  created_at, description`;

export const TOKEN_COLUMNS = `token_id, token_hash, project_id, role, created_at, expires_at,
  revoked_at, description`;

export const AUDIT_COLUMNS = "seq, time, project_id, record, seal, format";

/** The columns an append writes: AUDIT_COLUMNS and the running maximum of time. */
export const AUDIT_INSERT_COLUMNS = `${AUDIT_COLUMNS}, time_bound`;

const KEY_STATES: ReadonlySet<string> = new Set(Object.values(KeyState));
const ROLES: ReadonlySet<string> = new Set<Role>(["admin", "user"]);
const CREDENTIAL_STATES: ReadonlySet<string> = new Set(Object.values(CredentialState));
const CHANGE_KINDS: ReadonlySet<string> = new Set<ChangeKind>(["key", "credential", "token"]);

function isKeyState(value: string): value is KeyState {
  return KEY_STATES.has(value);
}

function isRole(value: string): value is Role {
  return ROLES.has(value);
}

function isCredentialState(value: string): value is CredentialState {
  return CREDENTIAL_STATES.has(value);
}

function isChangeKind(value: string): value is ChangeKind {
  return CHANGE_KINDS.has(value);
}

function checkRole(role: string, owner: string): Role {
  if (!isRole(role)) throw new Error(`${owner} has an unknown role ${JSON.stringify(role)}`);
  return role;
}

export function toKeyRecord(row: KeyRow): KeyRecord {
  if (!isKeyState(row.state)) {
    throw new Error(`key ${row.key_id} has an unknown state ${JSON.stringify(row.state)}`);
  }
  return {
    keyId: row.key_id,
    projectId: row.project_id,
    alias: row.alias,
    description: row.description,
    keySpec: row.key_spec,
    keyUsage: row.key_usage,
    origin: row.origin,
    enterpriseProjectId: row.enterprise_project_id,
    state: row.state,
    createdAt: row.created_at,
    deletionAt: row.deletion_at,
    primaryVersion: row.primary_version,
    rotationEnabled: row.rotation_enabled === true || row.rotation_enabled === 1,
    rotationIntervalDays: row.rotation_interval_days,
    lastRotationAt: row.last_rotation_at,
    rotationCount: row.rotation_count,
    nextRotationAt: row.next_rotation_at,
  };
}

export function toVersionRecord(row: VersionRow): KeyVersionRecord {
  return {
    keyId: row.key_id,
    version: row.version,
    // A copy, so callers get a plain Uint8Array that owns exactly its bytes.
    wrappedMaterial: new Uint8Array(row.wrapped_material),
    rootKeyId: row.root_key_id,
    createdAt: row.created_at,
  };
}

export function toCredentialRecord(row: CredentialRow): CredentialRecord {
  const owner = `credential ${row.access_key}`;
  if (!isCredentialState(row.state)) {
    throw new Error(`${owner} has an unknown state ${JSON.stringify(row.state)}`);
  }
  return {
    accessKey: row.access_key,
    projectId: row.project_id,
    role: checkRole(row.role, owner),
    // A copy, so callers get a plain Uint8Array that owns exactly its bytes.
    wrappedSecret: new Uint8Array(row.wrapped_secret),
    rootKeyId: row.root_key_id,
    state: row.state,
    createdAt: row.created_at,
    description: row.description,
  };
}

export function toTokenRecord(row: TokenRow): TokenRecord {
  return {
    tokenId: row.token_id,
    tokenHash: row.token_hash,
    projectId: row.project_id,
    role: checkRole(row.role, `token ${row.token_id}`),
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    description: row.description,
  };
}

export function toChange(row: ChangeRow): KeyChange {
  if (!isChangeKind(row.kind)) {
    throw new Error(`change ${row.seq} has an unknown kind ${JSON.stringify(row.kind)}`);
  }
  return { seq: row.seq, kind: row.kind, projectId: row.project_id, keyId: row.key_id };
}

export function toStoredAuditRecord(row: AuditRow): StoredAuditRecord {
  if (row.format !== 1 && row.format !== 2) {
    throw new Error(`audit record ${row.seq} has an unknown format ${row.format}`);
  }
  return {
    seq: row.seq,
    time: row.time,
    projectId: row.project_id,
    text: row.record,
    seal: row.seal ?? undefined,
    format: row.format,
  };
}

/**
 * Appends an audit record's column values, in AUDIT_INSERT_COLUMNS order,
 * to the parameters of a multi-row INSERT (pushed one by one: a temporary
 * array per record, spread into the parameters, cost more on this hot loop).
 */
export function pushAuditValues(
  values: unknown[],
  record: StoredAuditRecord,
  timeBound: number,
): void {
  values.push(
    record.seq,
    record.time,
    record.projectId,
    record.text,
    record.seal ?? null,
    record.format,
    timeBound,
  );
}
