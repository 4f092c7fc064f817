import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { ServiceImpl } from "@connectrpc/connect";
import type { CreateDatakeyRequest, KmsService } from "../../gen/kms/v1/kms_pb.js";
import { OVERHEAD } from "../crypto/ciphertext.js";
import { fromHex, toHex } from "../crypto/hex.js";
import { kmsError } from "../errors/kms-error.js";
import { decodeCipherText } from "./ciphertext-text.js";
import type { KeyCrypto } from "./key-crypto.js";

/**
 * Huawei's data key (DEK) operations and gen-random. A data key's
 * cipher_text is an ordinary kmsd ciphertext of the DEK, hex-encoded
 * (docs/rotation-and-data-keys.md defines every length).
 */
type DataKeyHandlers = Pick<
  ServiceImpl<typeof KmsService>,
  | "createDatakey"
  | "createDatakeyWithoutPlaintext"
  | "encryptDatakey"
  | "decryptDatakey"
  | "genRandom"
>;

/** encrypt-datakey's plain_text carries the DEK's SHA-256 digest after it. */
const DIGEST_LENGTH = 32;
const DEFAULT_DATAKEY_BITS = 256;
const KEY_SPEC_BITS: Readonly<Record<string, number>> = { AES_256: 256, AES_128: 128 };

/** The DEK length in bits: datakey_length wins over key_spec, as on Huawei. */
function dataKeyBits(request: Pick<CreateDatakeyRequest, "keySpec" | "datakeyLength">): number {
  if (request.datakeyLength !== "") return Number(request.datakeyLength);
  return KEY_SPEC_BITS[request.keySpec] ?? DEFAULT_DATAKEY_BITS;
}

function sha256(data: Uint8Array): Buffer {
  return createHash("sha256").update(data).digest();
}

/**
 * Checks that a data key's ciphertext holds `dataKeyLength` bytes of key
 * (Huawei's datakey_cipher_length), before any key is looked up.
 */
export function checkDataKeyCiphertext(ciphertext: Uint8Array, dataKeyLength: number): void {
  const held = ciphertext.length - OVERHEAD;
  if (held !== dataKeyLength) {
    throw kmsError(
      "KMS.2201",
      `cipher_text holds a data key of ${held} bytes, not datakey_cipher_length ${dataKeyLength}`,
    );
  }
}

export function dataKeyHandlers(crypto: KeyCrypto): DataKeyHandlers {
  async function makeDataKey(
    request: Pick<
      CreateDatakeyRequest,
      "projectId" | "keyId" | "keySpec" | "datakeyLength" | "additionalAuthenticatedData"
    >,
  ) {
    const key = await crypto.usableKey(request.projectId, request.keyId);
    const dataKey = randomBytes(dataKeyBits(request) / 8);
    const ciphertext = await crypto.seal(key, dataKey, {
      aad: request.additionalAuthenticatedData,
    });
    return { keyId: key.keyId, dataKey, cipherText: toHex(ciphertext) };
  }

  return {
    async createDatakey(request) {
      const { keyId, dataKey, cipherText } = await makeDataKey(request);
      const plainText = toHex(dataKey);
      dataKey.fill(0);
      return { keyId, plainText, cipherText };
    },

    async createDatakeyWithoutPlaintext(request) {
      const { keyId, dataKey, cipherText } = await makeDataKey(request);
      dataKey.fill(0);
      return { keyId, cipherText };
    },

    async encryptDatakey(request) {
      const length = Number(request.datakeyPlainLength);
      const bytes = fromHex(request.plainText);
      if (bytes === undefined)
        throw kmsError("KMS.2101", "plain_text is not hex (two digits a byte)");
      try {
        if (bytes.length !== length + DIGEST_LENGTH) {
          throw kmsError(
            "KMS.2101",
            `plain_text holds ${bytes.length} bytes, but datakey_plain_length ${length} needs ` +
              `${length + DIGEST_LENGTH}: the data key, then its ${DIGEST_LENGTH}-byte SHA-256 digest`,
          );
        }
        const dataKey = bytes.subarray(0, length);
        if (!timingSafeEqual(sha256(dataKey), bytes.subarray(length))) {
          throw kmsError(
            "KMS.2101",
            "the SHA-256 digest in plain_text does not match the data key before it",
          );
        }
        const key = await crypto.usableKey(request.projectId, request.keyId);
        const ciphertext = await crypto.seal(key, dataKey, {
          aad: request.additionalAuthenticatedData,
        });
        return {
          keyId: key.keyId,
          cipherText: toHex(ciphertext),
          datakeyLength: String(length),
        };
      } finally {
        bytes.fill(0);
      }
    },

    async decryptDatakey(request) {
      const ciphertext = decodeCipherText(request.cipherText, "hex");
      checkDataKeyCiphertext(ciphertext, Number(request.datakeyCipherLength));
      // The key the request names must exist (KMS.0207) before the
      // ciphertext is checked against it.
      await crypto.usableKey(request.projectId, request.keyId);
      const found = await crypto.keyForCiphertext(request.projectId, ciphertext, request.keyId);
      const dataKey = crypto.open(found, ciphertext, { aad: request.additionalAuthenticatedData });
      try {
        return {
          dataKey: toHex(dataKey),
          datakeyLength: String(dataKey.length),
          datakeyDgst: toHex(sha256(dataKey)),
        };
      } finally {
        dataKey.fill(0);
      }
    },

    async genRandom(request) {
      return { randomData: toHex(randomBytes(Number(request.randomDataLength) / 8)) };
    },
  };
}
