import { randomUUID } from "node:crypto";
import { DEFAULT_ROTATION_INTERVAL_DAYS } from "../keystore/rotation-schedule.js";
import { type KeyRecord, KeyState } from "../keystore/types.js";

/** What a new key is given; everything else starts as every new key does. */
export interface NewKey {
  readonly projectId: string;
  readonly alias: string;
  readonly description: string;
  readonly enterpriseProjectId: string;
  readonly createdAt: number;
}

/** A new AES_256 key's record: enabled, version 1, no rotation yet. */
export function newKeyRecord(key: NewKey): KeyRecord {
  return {
    keyId: randomUUID(),
    projectId: key.projectId,
    alias: key.alias,
    description: key.description,
    keySpec: "AES_256",
    keyUsage: "ENCRYPT_DECRYPT",
    origin: "kms",
    enterpriseProjectId: key.enterpriseProjectId,
    state: KeyState.Enabled,
    createdAt: key.createdAt,
    deletionAt: null,
    primaryVersion: 1,
    rotationEnabled: false,
    rotationIntervalDays: DEFAULT_ROTATION_INTERVAL_DAYS,
    lastRotationAt: null,
    rotationCount: 0,
    nextRotationAt: null,
  };
}
