/**
 * Records for the store tests. No vitest import: child processes in
 * sqlite.test.ts load this module too.
 */
import { createHash, createSecretKey } from "node:crypto";
import { sealEntries } from "../../src/audit/chain.js";
import type { CredentialRecord, TokenRecord } from "../../src/keystore/access-types.js";
import type { AuditBuild, AuditEntry } from "../../src/keystore/audit-types.js";
import { type KeyRecord, KeyState, type KeyVersionRecord } from "../../src/keystore/types.js";

export const P1 = "project-1";
export const P2 = "project-2";

let nextId = 0;

/** A fresh, zero-padded number: ids made from it sort in creation order. */
function fresh(): string {
  nextId += 1;
  return String(nextId).padStart(12, "0");
}

/** A valid key with a fresh id; override what the test is about. */
export function makeKey(overrides: Partial<KeyRecord> = {}): KeyRecord {
  const n = fresh();
  return {
    keyId: `00000000-0000-4000-8000-${n}`,
    projectId: P1,
    alias: `alias-${n}`,
    description: `key ${n}`,
    keySpec: "AES_256",
    keyUsage: "ENCRYPT_DECRYPT",
    origin: "kms",
    enterpriseProjectId: "0",
    state: KeyState.Enabled,
    createdAt: 1_700_000_000_000 + nextId,
    deletionAt: null,
    primaryVersion: 1,
    rotationEnabled: false,
    rotationIntervalDays: 365,
    lastRotationAt: null,
    rotationCount: 0,
    nextRotationAt: null,
    ...overrides,
  };
}

export function makeVersion(key: KeyRecord, version = key.primaryVersion): KeyVersionRecord {
  return {
    keyId: key.keyId,
    version,
    wrappedMaterial: new Uint8Array([version, 0, 255, 1, 2, 3, key.keyId.length]),
    rootKeyId: "root-fingerprint-1",
    createdAt: key.createdAt,
  };
}

/** A makeVersion for the store's rotations: material that names its key, version and time. */
export function makeNextVersion(keyId: string, version: number, now: number): KeyVersionRecord {
  return {
    keyId,
    version,
    wrappedMaterial: new Uint8Array([version % 256, 7, ...Buffer.from(String(now))]),
    rootKeyId: "root-fingerprint-1",
    createdAt: now,
  };
}

export function makeCredential(overrides: Partial<CredentialRecord> = {}): CredentialRecord {
  const n = fresh();
  return {
    accessKey: `AK${n}`,
    projectId: P1,
    role: "user",
    wrappedSecret: new Uint8Array([0, 255, 7, ...Buffer.from(n)]),
    rootKeyId: "root-fingerprint-1",
    state: "enabled",
    createdAt: 1_700_000_000_000 + nextId,
    description: `credential ${n}`,
    ...overrides,
  };
}

export function makeToken(overrides: Partial<TokenRecord> = {}): TokenRecord {
  const n = fresh();
  return {
    tokenId: `tok-${n}`,
    tokenHash: createHash("sha256").update(`token ${n}`).digest("hex"),
    projectId: P1,
    role: "user",
    createdAt: 1_700_000_000_000 + nextId,
    expiresAt: 1_800_000_000_000 + nextId,
    revokedAt: null,
    description: `token ${n}`,
    ...overrides,
  };
}

export function makeAuditEntry(overrides: Partial<AuditEntry> = {}): AuditEntry {
  const n = fresh();
  return {
    time: 1_700_000_000_000 + nextId,
    requestId: `req-${n}`,
    protocol: "grpc",
    projectId: P1,
    principal: "AK000000000001",
    operation: "EncryptData",
    keyId: `00000000-0000-4000-8000-${n}`,
    sequence: "",
    outcome: "OK",
    latencyUs: 1234,
    context: { purpose: "a1b2c3" },
    ...overrides,
  };
}

/** The audit chain key of the store tests. */
export const TEST_CHAIN_KEY = createSecretKey(Buffer.alloc(32, 7));

/** What the audit log hands appendAudit for these entries: real seals under TEST_CHAIN_KEY. */
export function testAppend(entries: readonly AuditEntry[]): AuditBuild {
  return sealEntries(TEST_CHAIN_KEY, entries);
}
