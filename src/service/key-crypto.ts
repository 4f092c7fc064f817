import {
  type CiphertextHeader,
  openCiphertext,
  RANDOMNESS_LENGTH,
  readCiphertextHeader,
  sealCiphertext,
} from "../crypto/ciphertext.js";
import { CiphertextError } from "../crypto/ciphertext-error.js";
import type { EncryptionContext } from "../crypto/context-encoding.js";
import { kmsError } from "../errors/kms-error.js";
import type { KeyRing, RingKey } from "../keys/key-ring.js";
import type { RandomPool } from "../keys/random-pool.js";
import type { VersionMaterial } from "../keys/version-material.js";
import * as keyStates from "./key-states.js";

/** What a ciphertext is bound to besides its key: decrypting needs the same. */
export interface Binding {
  readonly context?: EncryptionContext;
  /** additional_authenticated_data: its UTF-8 bytes are the format's AAD ("" is none). */
  readonly aad?: string;
}

/** A ciphertext's key and version, found and checked, ready to open it. */
export interface CiphertextKey {
  readonly key: RingKey;
  readonly header: CiphertextHeader;
  readonly versionKey: VersionMaterial;
}

/**
 * The one place kmsd's operations seal and open ciphertexts
 * (src/crypto/ciphertext.ts) with a project's keys: encrypt-data,
 * decrypt-data, data keys, re-encrypt and the batches all go through it.
 */
export interface KeyCrypto {
  /** The key to encrypt with: it must exist in the project and be enabled. */
  usableKey(projectId: string, keyId: string): Promise<RingKey>;
  /** Encrypts under the key's newest (primary) version. */
  seal(key: RingKey, plaintext: Uint8Array, binding: Binding): Promise<Buffer>;
  /**
   * The key and version a ciphertext names, in the project; `expectedKeyId`
   * (when not "") must be that key. Every failure is KMS.2201 but the key
   * state errors.
   */
  keyForCiphertext(
    projectId: string,
    ciphertext: Uint8Array,
    expectedKeyId: string,
  ): Promise<CiphertextKey>;
  /** Authenticates and decrypts; failures are KMS.2201 with the reason. */
  open(found: CiphertextKey, ciphertext: Uint8Array, binding: Binding): Buffer;
}

const SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT";

/**
 * Refuses an encryption_algorithm the key does not have: every kmsd key is
 * symmetric, so only SYMMETRIC_DEFAULT (or none) is accepted.
 */
export function assertAlgorithm(key: RingKey, algorithm: string, field: string): void {
  if (algorithm === "" || algorithm === SYMMETRIC_DEFAULT) return;
  throw kmsError(
    "KMS.2105",
    `${field} ${algorithm} is not supported by key ${key.keyId}, a symmetric ${key.keySpec} key: use ${SYMMETRIC_DEFAULT}`,
  );
}

export function createKeyCrypto(keyRing: KeyRing, randomPool: RandomPool): KeyCrypto {
  return {
    async usableKey(projectId, keyId) {
      const key = await keyRing.get(projectId, keyId);
      if (key === undefined) throw kmsError("KMS.0207", `key ${keyId} does not exist`);
      keyStates.assertUsable(key);
      return key;
    },

    async seal(key, plaintext, binding) {
      const version = key.primaryVersion;
      const versionKey = await keyRing.versionKey(key, version);
      if (versionKey === undefined) {
        throw kmsError("KMS.0102", `key ${key.keyId} has lost version ${version}`);
      }
      return sealCiphertext({
        keyId: key.keyId,
        keyVersion: version,
        versionKey: versionKey.bytes,
        plaintext,
        ...(binding.context === undefined ? {} : { context: binding.context }),
        ...aadOf(binding),
        randomness: randomPool.take(RANDOMNESS_LENGTH),
      });
    },

    async keyForCiphertext(projectId, ciphertext, expectedKeyId) {
      const header = asKmsError(() => readCiphertextHeader(ciphertext));
      if (expectedKeyId !== "" && expectedKeyId !== header.keyId) {
        throw kmsError("KMS.2201", `cipher_text was not encrypted under key ${expectedKeyId}`);
      }
      const key = await keyRing.get(projectId, header.keyId);
      // A corrupted key id or version must read as a bad ciphertext, not as a
      // missing key: the ciphertext is what the caller got wrong.
      if (key === undefined) {
        throw kmsError("KMS.2201", "cipher_text names a key that does not exist in this project");
      }
      keyStates.assertUsable(key);
      const versionKey = await keyRing.versionKey(key, header.keyVersion);
      if (versionKey === undefined) {
        throw kmsError("KMS.2201", "cipher_text names a key version that does not exist");
      }
      return { key, header, versionKey };
    },

    open(found, ciphertext, binding) {
      return asKmsError(() =>
        openCiphertext(ciphertext, found.header, {
          versionKey: found.versionKey.bytes,
          ...(binding.context === undefined ? {} : { context: binding.context }),
          ...aadOf(binding),
        }),
      );
    },
  };
}

function aadOf(binding: Binding): { aad?: Uint8Array } {
  return binding.aad === undefined || binding.aad === ""
    ? {}
    : { aad: Buffer.from(binding.aad, "utf8") };
}

function asKmsError<T>(work: () => T): T {
  try {
    return work();
  } catch (error) {
    throw error instanceof CiphertextError ? kmsError("KMS.2201", error.message) : error;
  }
}
