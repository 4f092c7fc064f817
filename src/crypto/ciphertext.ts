import {
  type CipherGCM,
  type CipherGCMOptions,
  type CipherGCMTypes,
  createCipheriv,
  createDecipheriv,
  createHmac,
  type DecipherGCM,
  type KeyObject,
} from "node:crypto";
import { CiphertextError } from "./ciphertext-error.js";
import { type EncryptionContext, encodeEncryptionContext, hasPairs } from "./context-encoding.js";
import { HMAC_SHA256_BYTES, hmacSha256Into } from "./hmac-sha256.js";
import { bytesToUuid, writeUuid } from "./uuid-bytes.js";

/**
 * kmsd's ciphertext, format version 1 (docs/ciphertext-format.md is the
 * specification; keep the two in step):
 *
 *   offset size
 *    0      1   format version (1)
 *    1      1   flags: bit 0 encryption context bound, bit 1 AAD bound
 *    2     16   key id (UUID bytes)
 *   18      4   key version (u32be, >= 1)
 *   22     16   salt for the per-message key
 *   38     12   AES-GCM IV
 *   50      n   AES-256-GCM ciphertext
 *   50+n   16   AES-GCM tag
 *
 * Each message gets its own AES key, derived from the key version's material
 * and the header (so from the random salt): one key version can encrypt
 * without limit and the random-IV collision bound never builds up on it.
 */
export const FORMAT_VERSION = 1;
export const HEADER_LENGTH = 50;
export const TAG_LENGTH = 16;
export const OVERHEAD = HEADER_LENGTH + TAG_LENGTH;
/** Fresh random bytes each message needs: the salt, then the IV. */
export const RANDOMNESS_LENGTH = 28;

const FLAG_CONTEXT = 0b01;
const FLAG_AAD = 0b10;
const KNOWN_FLAGS = FLAG_CONTEXT | FLAG_AAD;
const SALT_OFFSET = 22;
const IV_OFFSET = 38;
/** The header bytes that enter the key derivation: everything but the IV. */
const KDF_CONTEXT_END = IV_OFFSET;

// NIST SP 800-108r1 KDF in counter mode with HMAC-SHA256, one 256-bit block:
// K = HMAC(Kv, [1]_32 || label || 0x00 || header[0..38) || [256]_32).
const KDF_PREFIX = Buffer.concat([
  Buffer.from([0, 0, 0, 1]),
  Buffer.from("kmsd message key v1", "ascii"),
  Buffer.from([0]),
]);
const KDF_SUFFIX = Buffer.from([0, 0, 1, 0]);
/** The KDF's whole input, reused: only the header bytes in the middle change. */
const kdfInput = Buffer.concat([KDF_PREFIX, Buffer.alloc(KDF_CONTEXT_END), KDF_SUFFIX]);
/** The message key, between its derivation and the cipher taking a copy (see messageCipher). */
const messageKey = Buffer.alloc(HMAC_SHA256_BYTES);

export interface CiphertextHeader {
  readonly keyId: string;
  readonly keyVersion: number;
  readonly hasContext: boolean;
  readonly hasAad: boolean;
}

/** A key version's material: its bytes, or a KeyObject holding them. */
export type VersionKey = KeyObject | Uint8Array;

export interface SealInput {
  readonly keyId: string;
  readonly keyVersion: number;
  /** The key version's 32 bytes of material, as an HMAC key. */
  readonly versionKey: VersionKey;
  readonly plaintext: Uint8Array;
  readonly context?: EncryptionContext;
  readonly aad?: Uint8Array;
  /** RANDOMNESS_LENGTH bytes from a CSPRNG; never reused. */
  readonly randomness: Uint8Array;
}

export interface OpenInput {
  readonly versionKey: VersionKey;
  readonly context?: EncryptionContext;
  readonly aad?: Uint8Array;
}

export function sealCiphertext(input: SealInput): Buffer {
  // The reader takes a ciphertext without plaintext bytes for malformed.
  if (input.plaintext.length === 0) throw new RangeError("plaintext must not be empty");
  if (input.randomness.length !== RANDOMNESS_LENGTH) {
    throw new RangeError(`randomness must be ${RANDOMNESS_LENGTH} bytes`);
  }
  if (
    !Number.isInteger(input.keyVersion) ||
    input.keyVersion < 1 ||
    input.keyVersion > 0xffffffff
  ) {
    throw new RangeError(`invalid key version ${input.keyVersion}`);
  }
  const withContext = hasPairs(input.context);
  const withAad = input.aad !== undefined && input.aad.length > 0;
  const out = Buffer.allocUnsafe(OVERHEAD + input.plaintext.length);
  out[0] = FORMAT_VERSION;
  out[1] = (withContext ? FLAG_CONTEXT : 0) | (withAad ? FLAG_AAD : 0);
  writeUuid(input.keyId, out, 2);
  out.writeUInt32BE(input.keyVersion, 18);
  out.set(input.randomness, SALT_OFFSET);
  const header = out.subarray(0, HEADER_LENGTH);

  const cipher = messageCipher<CipherGCM>(createCipheriv, input.versionKey, header);
  cipher.setAAD(associatedData(header, withContext ? input.context : undefined, input.aad));
  const body = cipher.update(input.plaintext);
  body.copy(out, HEADER_LENGTH);
  // GCM is a stream mode: final() never holds back bytes.
  cipher.final();
  cipher.getAuthTag().copy(out, HEADER_LENGTH + body.length);
  return out;
}

/** Reads the clear header: which key and version made this ciphertext. */
export function readCiphertextHeader(ciphertext: Uint8Array): CiphertextHeader {
  if (ciphertext.length < OVERHEAD + 1) {
    throw new CiphertextError("malformed", "cipher_text is too short to be a kmsd ciphertext");
  }
  if (ciphertext[0] !== FORMAT_VERSION) {
    throw new CiphertextError(
      "malformed",
      `cipher_text has unknown format version ${ciphertext[0]}; this kmsd reads version ${FORMAT_VERSION}`,
    );
  }
  const flags = ciphertext[1] ?? 0;
  const keyVersion = new DataView(
    ciphertext.buffer,
    ciphertext.byteOffset,
    ciphertext.byteLength,
  ).getUint32(18);
  if ((flags & ~KNOWN_FLAGS) !== 0 || keyVersion === 0) {
    throw new CiphertextError("malformed", "cipher_text has an invalid header");
  }
  return {
    keyId: bytesToUuid(ciphertext.subarray(2, 18)),
    keyVersion,
    hasContext: (flags & FLAG_CONTEXT) !== 0,
    hasAad: (flags & FLAG_AAD) !== 0,
  };
}

/** Authenticates and decrypts; the header must be the one read from it. */
export function openCiphertext(
  ciphertext: Uint8Array,
  header: CiphertextHeader,
  input: OpenInput,
): Buffer {
  const withContext = hasPairs(input.context);
  const withAad = input.aad !== undefined && input.aad.length > 0;
  checkBindings(header, withContext, withAad);

  const headerBytes = ciphertext.subarray(0, HEADER_LENGTH);
  const tagOffset = ciphertext.length - TAG_LENGTH;
  const decipher = messageCipher<DecipherGCM>(createDecipheriv, input.versionKey, headerBytes);
  decipher.setAAD(associatedData(headerBytes, withContext ? input.context : undefined, input.aad));
  decipher.setAuthTag(ciphertext.subarray(tagOffset));
  const plaintext = decipher.update(ciphertext.subarray(HEADER_LENGTH, tagOffset));
  try {
    decipher.final();
  } catch {
    throw new CiphertextError(
      "authentication",
      withContext || withAad
        ? "cipher_text is corrupted, or the encryption_context or additional_authenticated_data differ from the ones it was encrypted with"
        : "cipher_text is corrupted: it failed authentication",
    );
  }
  return plaintext;
}

function checkBindings(header: CiphertextHeader, withContext: boolean, withAad: boolean): void {
  if (header.hasContext && !withContext) {
    throw new CiphertextError(
      "context-missing",
      "cipher_text was encrypted with an encryption_context: decrypt it with the same encryption_context",
    );
  }
  if (!header.hasContext && withContext) {
    throw new CiphertextError(
      "context-unexpected",
      "cipher_text was encrypted without an encryption_context: decrypt it without one",
    );
  }
  if (header.hasAad && !withAad) {
    throw new CiphertextError(
      "aad-missing",
      "cipher_text was encrypted with additional_authenticated_data: decrypt it with the same value",
    );
  }
  if (!header.hasAad && withAad) {
    throw new CiphertextError(
      "aad-unexpected",
      "cipher_text was encrypted without additional_authenticated_data: decrypt it without one",
    );
  }
}

/**
 * The message's AES-256-GCM cipher (or decipher): its key derived from the
 * version's material and the header, its IV the header's. The key passes
 * through the shared `messageKey` buffer, wiped once the cipher has its copy.
 */
function messageCipher<Cipher>(
  create: (
    algorithm: CipherGCMTypes,
    key: Uint8Array,
    iv: Uint8Array,
    options: CipherGCMOptions,
  ) => Cipher,
  versionKey: VersionKey,
  header: Uint8Array,
): Cipher {
  kdfInput.set(header.subarray(0, KDF_CONTEXT_END), KDF_PREFIX.length);
  if (versionKey instanceof Uint8Array) hmacSha256Into(versionKey, kdfInput, messageKey);
  else createHmac("sha256", versionKey).update(kdfInput).digest().copy(messageKey);
  const cipher = create("aes-256-gcm", messageKey, header.subarray(IV_OFFSET, HEADER_LENGTH), {
    authTagLength: TAG_LENGTH,
  });
  messageKey.fill(0);
  return cipher;
}

/**
 * GCM's AAD: the whole header, then the context's canonical encoding when
 * one is bound, then the AAD as u32be length || bytes when one is bound. The
 * flags in the header say which parts follow, so the concatenation is
 * unambiguous.
 */
function associatedData(
  header: Uint8Array,
  context: EncryptionContext | undefined,
  aad: Uint8Array | undefined,
): Uint8Array {
  // The common case, nothing bound: the header alone, not a copy of it.
  if (context === undefined && (aad === undefined || aad.length === 0)) return header;
  const parts: Uint8Array[] = [header];
  if (context !== undefined) parts.push(encodeEncryptionContext(context));
  if (aad !== undefined && aad.length > 0) {
    const length = Buffer.allocUnsafe(4);
    length.writeUInt32BE(aad.length);
    parts.push(length, aad);
  }
  return Buffer.concat(parts);
}
