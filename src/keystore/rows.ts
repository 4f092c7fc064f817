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
import { type AuditEntry, type AuditRecord, NO_CONTEXT } from "./audit-types.js";
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
  request_id: string;
  protocol: string;
  project_id: string;
  principal: string;
  operation: string;
  key_id: string;
  sequence: string;
  outcome: string;
  latency_us: number;
  /** The context as the JSON text it was stored as. */
  context: string;
  prev_hash: string;
  hash: string;
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

export const AUDIT_COLUMNS = `seq, time, request_id, protocol, project_id, principal, operation,
  key_id, sequence, outcome, latency_us, context, prev_hash, hash`;

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

function isEmpty(record: object): boolean {
  for (const _ in record) return false;
  return true;
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    Object.values(value).every((v) => typeof v === "string")
  );
}

/**
 * Exactly the AuditEntry fields, so that what `chain` hashes is what the
 * table stores and readAudit returns: a verifier recomputing hashes from
 * read records must get the same input.
 */
export function copyAuditEntry(entry: AuditEntry): AuditEntry {
  if (!isStringRecord(entry.context)) {
    // Stored, it would make every later readAudit over it fail.
    throw new TypeError(`audit entry ${entry.requestId}: context must map strings to strings`);
  }
  return {
    time: entry.time,
    requestId: entry.requestId,
    protocol: entry.protocol,
    projectId: entry.projectId,
    principal: entry.principal,
    operation: entry.operation,
    keyId: entry.keyId,
    sequence: entry.sequence,
    outcome: entry.outcome,
    latencyUs: entry.latencyUs,
    context: isEmpty(entry.context) ? NO_CONTEXT : { ...entry.context },
  };
}

export function toAuditRecord(row: AuditRow): AuditRecord {
  const context: unknown = JSON.parse(row.context);
  if (!isStringRecord(context)) {
    throw new Error(`audit record ${row.seq} has a malformed context`);
  }
  return {
    seq: row.seq,
    time: row.time,
    requestId: row.request_id,
    protocol: row.protocol,
    projectId: row.project_id,
    principal: row.principal,
    operation: row.operation,
    keyId: row.key_id,
    sequence: row.sequence,
    outcome: row.outcome,
    latencyUs: row.latency_us,
    context,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

/**
 * Appends an audit record's column values, in AUDIT_COLUMNS order, to the
 * parameters of a multi-row INSERT (pushed one by one: a temporary array
 * per record, spread into the parameters, cost more on this hot loop).
 */
export function pushAuditValues(
  values: unknown[],
  seq: number,
  entry: AuditEntry,
  prevHash: string,
  hash: string,
): void {
  values.push(
    seq,
    entry.time,
    entry.requestId,
    entry.protocol,
    entry.projectId,
    entry.principal,
    entry.operation,
    entry.keyId,
    entry.sequence,
    entry.outcome,
    entry.latencyUs,
    JSON.stringify(entry.context),
    prevHash,
    hash,
  );
}
