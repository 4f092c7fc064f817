import type { MessageInitShape } from "@bufbuild/protobuf";
import type {
  DecryptDataRequest,
  DecryptDataResponseSchema,
  EncryptDataRequest,
  EncryptDataResponseSchema,
} from "../../gen/kms/v1/kms_pb.js";
import { encodeEncryptionContext } from "../crypto/context-encoding.js";
import { crc32c } from "../crypto/crc32c.js";
import { decodeCipherText } from "./ciphertext-text.js";
import type { ChecksummedField } from "./integrity.js";
import { verifyChecksums } from "./integrity.js";
import { assertAlgorithm, type Binding, type KeyCrypto } from "./key-crypto.js";

/** EncryptData and DecryptData, as the single RPCs and every batch item run them. */
export type EncryptData = (
  request: EncryptDataRequest,
) => Promise<MessageInitShape<typeof EncryptDataResponseSchema>>;
export type DecryptData = (
  request: DecryptDataRequest,
) => Promise<MessageInitShape<typeof DecryptDataResponseSchema>>;

type BindingFields = Pick<
  EncryptDataRequest,
  | "encryptionContext"
  | "encryptionContextCrc32c"
  | "additionalAuthenticatedData"
  | "additionalAuthenticatedDataCrc32c"
>;

function bindingOf(request: BindingFields): Binding {
  return { context: request.encryptionContext, aad: request.additionalAuthenticatedData };
}

/** The checksums encrypt and decrypt share: the context's and the AAD's. */
function bindingChecksums(request: BindingFields) {
  const context: ChecksummedField = {
    field: "encryption_context",
    crc32c: request.encryptionContextCrc32c,
    bytes: () => encodeEncryptionContext(request.encryptionContext),
    code: "KMS.0208",
  };
  const aad: ChecksummedField = {
    field: "additional_authenticated_data",
    crc32c: request.additionalAuthenticatedDataCrc32c,
    bytes: () => Buffer.from(request.additionalAuthenticatedData, "utf8"),
    code: "KMS.0308",
  };
  return { context, aad };
}

/**
 * Verifies the request's checksums (its own field's, then the binding's)
 * before any crypto; false when it carries none, as most requests do: they
 * skip building the checks (several objects per request) altogether.
 */
function verifyRequestChecksums<Own extends string>(
  request: BindingFields,
  name: Own,
  own: ChecksummedField,
): Record<Own | "context" | "aad", boolean> | false {
  if (
    own.crc32c === undefined &&
    request.encryptionContextCrc32c === undefined &&
    request.additionalAuthenticatedDataCrc32c === undefined
  ) {
    return false;
  }
  const fields = { [name]: own, ...bindingChecksums(request) } as Record<
    Own | "context" | "aad",
    ChecksummedField
  >;
  return verifyChecksums(fields) ?? false;
}

export function encryptDataHandler(crypto: KeyCrypto): EncryptData {
  return async (request) => {
    const plaintext = Buffer.from(request.plainText, "utf8");
    const verified = verifyRequestChecksums(request, "plainText", {
      field: "plain_text",
      crc32c: request.plainTextCrc32c,
      bytes: () => plaintext,
      code: "KMS.2101",
    });
    const key = await crypto.usableKey(request.projectId, request.keyId);
    assertAlgorithm(key, request.encryptionAlgorithm, "encryption_algorithm");
    const ciphertext = await crypto.seal(key, plaintext, bindingOf(request));
    return {
      keyId: key.keyId,
      cipherText: ciphertext.toString("base64"),
      ...(verified && {
        cipherTextCrc32c: crc32c(ciphertext),
        verifiedPlainTextCrc32c: verified.plainText,
        verifiedEncryptionContextCrc32c: verified.context,
        verifiedAdditionalAuthenticatedDataCrc32c: verified.aad,
      }),
    };
  };
}

export function decryptDataHandler(crypto: KeyCrypto): DecryptData {
  return async (request) => {
    const ciphertext = decodeCipherText(request.cipherText, "base64");
    const verified = verifyRequestChecksums(request, "cipherText", {
      field: "cipher_text",
      crc32c: request.cipherTextCrc32c,
      bytes: () => ciphertext,
      code: "KMS.2201",
    });
    const found = await crypto.keyForCiphertext(request.projectId, ciphertext, request.keyId);
    assertAlgorithm(found.key, request.encryptionAlgorithm, "encryption_algorithm");
    const plaintext = crypto.open(found, ciphertext, bindingOf(request));
    return {
      keyId: found.key.keyId,
      plainText: plaintext.toString("utf8"),
      plainTextBase64: plaintext.toString("base64"),
      ...(verified && {
        plainTextCrc32c: crc32c(plaintext),
        verifiedCipherTextCrc32c: verified.cipherText,
        verifiedEncryptionContextCrc32c: verified.context,
        verifiedAdditionalAuthenticatedDataCrc32c: verified.aad,
      }),
    };
  };
}
