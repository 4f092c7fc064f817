import { randomUUID } from "node:crypto";
import { Code, type ServiceImpl } from "@connectrpc/connect";
import type { KmsService } from "../../gen/kms/v1/kms_pb.js";
import {
  type CiphertextHeader,
  openCiphertext,
  RANDOMNESS_LENGTH,
  readCiphertextHeader,
  sealCiphertext,
} from "../crypto/ciphertext.js";
import { CiphertextError } from "../crypto/ciphertext-error.js";
import { kmsError } from "../errors/kms-error.js";
import type { KeyRing, RingKey } from "../keys/key-ring.js";
import { createKeyVersion } from "../keys/key-version-factory.js";
import type { RandomPool } from "../keys/random-pool.js";
import type { RootKey } from "../keys/root-key.js";
import { DEFAULT_ROTATION_INTERVAL_DAYS } from "../keystore/rotation-schedule.js";
import {
  AliasTakenError,
  type KeyPatch,
  type KeyRecord,
  KeyState,
  type KeyStore,
} from "../keystore/types.js";
import { keyInfo } from "./key-info.js";
import * as keyStates from "./key-states.js";

export interface KmsServiceDeps {
  readonly store: KeyStore;
  readonly keyRing: KeyRing;
  readonly rootKey: RootKey;
  readonly randomPool: RandomPool;
  /** Reported as each key's realm (Huawei's region). */
  readonly realm: string;
  readonly now: () => number;
}

const DEFAULT_LIST_LIMIT = 1000;
const SUPPORTED_KEY_SPEC = "AES_256";
const SUPPORTED_KEY_USAGE = "ENCRYPT_DECRYPT";
const SUPPORTED_ORIGIN = "kms";

/**
 * kms.v1.KmsService. Requests arrive validated (the validation interceptor
 * runs first), so the handlers only enforce what the proto cannot say.
 */
export function createKmsService(deps: KmsServiceDeps): ServiceImpl<typeof KmsService> {
  const { store, keyRing, rootKey, randomPool, realm, now } = deps;

  async function existingKey(projectId: string, keyId: string): Promise<KeyRecord> {
    const key = await store.getKey(projectId, keyId);
    if (key === undefined) throw keyNotFound(keyId);
    return key;
  }

  async function changeKey(
    projectId: string,
    keyId: string,
    decide: (key: KeyRecord) => KeyPatch,
  ): Promise<KeyRecord> {
    const key = await store.updateKey(projectId, keyId, decide);
    if (key === undefined) throw keyNotFound(keyId);
    keyRing.update(key);
    return key;
  }

  /** The key to decrypt a ciphertext with; every failure is KMS.2201 but the state errors. */
  async function keyForCiphertext(
    projectId: string,
    header: CiphertextHeader,
  ): Promise<{
    key: RingKey;
    versionKey: NonNullable<Awaited<ReturnType<KeyRing["versionKey"]>>>;
  }> {
    const key = await keyRing.get(projectId, header.keyId);
    // A corrupted key id or version must read as a bad ciphertext, not as a
    // missing key: the ciphertext is what the caller got wrong.
    if (key === undefined) {
      throw kmsError("KMS.2201", "cipher_text names a key that does not exist in this project");
    }
    keyStates.assertUsable(key.record);
    const versionKey = await keyRing.versionKey(key, header.keyVersion);
    if (versionKey === undefined) {
      throw kmsError("KMS.2201", "cipher_text names a key version that does not exist");
    }
    return { key, versionKey };
  }

  return {
    async createKey(request) {
      const keySpec = request.keySpec || SUPPORTED_KEY_SPEC;
      const keyUsage = request.keyUsage || SUPPORTED_KEY_USAGE;
      const origin = request.origin || SUPPORTED_ORIGIN;
      if (keySpec !== SUPPORTED_KEY_SPEC) {
        throw unsupported(`key_spec ${keySpec} is not supported: kmsd creates AES_256 keys`);
      }
      if (keyUsage !== SUPPORTED_KEY_USAGE) {
        throw unsupported(`key_usage ${keyUsage} is not supported for AES_256 keys`);
      }
      if (origin !== SUPPORTED_ORIGIN) {
        throw unsupported(`origin ${origin} is not supported: kmsd generates all key material`);
      }
      const createdAt = now();
      const key: KeyRecord = {
        keyId: randomUUID(),
        projectId: request.projectId,
        alias: request.keyAlias,
        description: request.keyDescription,
        keySpec,
        keyUsage,
        origin,
        enterpriseProjectId: request.enterpriseProjectId || "0",
        state: KeyState.Enabled,
        createdAt,
        deletionAt: null,
        primaryVersion: 1,
        rotationEnabled: false,
        rotationIntervalDays: DEFAULT_ROTATION_INTERVAL_DAYS,
        lastRotationAt: null,
        rotationCount: 0,
        nextRotationAt: null,
      };
      try {
        await store.createKey(key, createKeyVersion(rootKey, key.keyId, 1, createdAt));
      } catch (error) {
        if (error instanceof AliasTakenError) {
          throw kmsError("KMS.0308", error.message, { connectCode: Code.AlreadyExists });
        }
        throw error;
      }
      return { keyInfo: { keyId: key.keyId, domainId: key.projectId } };
    },

    async describeKey(request) {
      const key = await existingKey(request.projectId, request.keyId);
      return { keyInfo: keyInfo(key, realm) };
    },

    async listKeys(request) {
      let page: Awaited<ReturnType<KeyStore["listKeys"]>>;
      try {
        page = await store.listKeys({
          projectId: request.projectId,
          limit: request.limit === "" ? DEFAULT_LIST_LIMIT : Number(request.limit),
          ...(request.marker === "" ? {} : { marker: request.marker }),
          ...(request.keyState === "" ? {} : { state: request.keyState as KeyState }),
          ...(request.keySpec === "" || request.keySpec === "ALL"
            ? {}
            : { keySpec: request.keySpec }),
        });
      } catch (error) {
        if (error instanceof RangeError) throw kmsError("KMS.0308", "marker is invalid");
        throw error;
      }
      return {
        keys: page.keys.map((key) => key.keyId),
        keyDetails: page.keys.map((key) => keyInfo(key, realm)),
        nextMarker: page.nextMarker ?? "",
        truncated: page.nextMarker === undefined ? "false" : "true",
        total: page.total,
      };
    },

    async enableKey(request) {
      const key = await changeKey(request.projectId, request.keyId, keyStates.enable);
      return { keyInfo: { keyId: key.keyId, keyState: key.state } };
    },

    async disableKey(request) {
      const key = await changeKey(request.projectId, request.keyId, keyStates.disable);
      return { keyInfo: { keyId: key.keyId, keyState: key.state } };
    },

    async scheduleKeyDeletion(request) {
      const decide = keyStates.scheduleDeletion(Number(request.pendingDays), now());
      const key = await changeKey(request.projectId, request.keyId, decide);
      return { keyId: key.keyId, keyState: key.state };
    },

    async cancelKeyDeletion(request) {
      const key = await changeKey(request.projectId, request.keyId, keyStates.cancelDeletion);
      return { keyId: key.keyId, keyState: key.state };
    },

    async encryptData(request) {
      const key = await keyRing.get(request.projectId, request.keyId);
      if (key === undefined) throw keyNotFound(request.keyId);
      keyStates.assertUsable(key.record);
      const version = key.record.primaryVersion;
      const versionKey = await keyRing.versionKey(key, version);
      if (versionKey === undefined) {
        throw kmsError("KMS.0102", `key ${key.record.keyId} has lost version ${version}`);
      }
      const ciphertext = sealCiphertext({
        keyId: key.record.keyId,
        keyVersion: version,
        versionKey,
        plaintext: Buffer.from(request.plainText, "utf8"),
        context: request.encryptionContext,
        randomness: randomPool.take(RANDOMNESS_LENGTH),
      });
      return { keyId: key.record.keyId, cipherText: ciphertext.toString("base64") };
    },

    async decryptData(request) {
      const ciphertext = Buffer.from(request.cipherText, "base64");
      // Node's decoder is lenient (missing padding, text after "="): accept
      // only the one canonical encoding of a ciphertext.
      if (ciphertext.toString("base64") !== request.cipherText) {
        throw kmsError("KMS.2201", "cipher_text is not canonical base64 (RFC 4648, padded)");
      }
      const header = readHeader(ciphertext);
      if (request.keyId !== "" && request.keyId !== header.keyId) {
        throw kmsError("KMS.2201", `cipher_text was not encrypted under key ${request.keyId}`);
      }
      const { key, versionKey } = await keyForCiphertext(request.projectId, header);
      let plaintext: Buffer;
      try {
        plaintext = openCiphertext(ciphertext, header, {
          versionKey,
          context: request.encryptionContext,
        });
      } catch (error) {
        throw asCiphertextError(error);
      }
      return {
        keyId: key.record.keyId,
        plainText: plaintext.toString("utf8"),
        plainTextBase64: plaintext.toString("base64"),
      };
    },
  };
}

function readHeader(ciphertext: Buffer): CiphertextHeader {
  try {
    return readCiphertextHeader(ciphertext);
  } catch (error) {
    throw asCiphertextError(error);
  }
}

function asCiphertextError(error: unknown): unknown {
  return error instanceof CiphertextError ? kmsError("KMS.2201", error.message) : error;
}

function keyNotFound(keyId: string) {
  return kmsError("KMS.0207", `key ${keyId} does not exist`);
}

function unsupported(message: string) {
  return kmsError("KMS.0308", message, { connectCode: Code.Unimplemented });
}
