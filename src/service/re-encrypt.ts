import type { ServiceImpl } from "@connectrpc/connect";
import type { KmsService } from "../../gen/kms/v1/kms_pb.js";
import { type CipherTextEncoding, decodeCipherText, encodeCipherText } from "./ciphertext-text.js";
import { checkDataKeyCiphertext } from "./data-keys.js";
import { assertAlgorithm, type KeyCrypto } from "./key-crypto.js";

/**
 * re-encrypt: opens a cipher_text with the key (and version) it names and
 * seals its plaintext under the destination key's newest version, inside
 * this process. With the cipher_text's own key as destination, it moves an
 * old ciphertext to the newest version.
 */
export function reEncryptHandler(crypto: KeyCrypto): ServiceImpl<typeof KmsService>["reEncrypt"] {
  return async (request) => {
    const { projectId } = request;
    const isDataKey = request.datakeyCipherLength !== "";
    const encoding: CipherTextEncoding = isDataKey ? "hex" : "base64";
    const ciphertext = decodeCipherText(request.cipherText, encoding);
    if (isDataKey) checkDataKeyCiphertext(ciphertext, Number(request.datakeyCipherLength));

    // Every key is checked before anything is decrypted: the keys the
    // request names (a missing one is KMS.0207), then the ciphertext's.
    if (request.sourceKeyId !== "") await crypto.usableKey(projectId, request.sourceKeyId);
    const destination = await crypto.usableKey(projectId, request.destinationKeyId);
    const source = await crypto.keyForCiphertext(projectId, ciphertext, request.sourceKeyId);
    assertAlgorithm(source.key, request.sourceEncryptionAlgorithm, "source_encryption_algorithm");
    assertAlgorithm(
      destination,
      request.destinationEncryptionAlgorithm,
      "destination_encryption_algorithm",
    );

    const plaintext = crypto.open(source, ciphertext, {
      context: request.sourceEncryptionContext,
      aad: request.sourceAdditionalAuthenticatedData,
    });
    try {
      const sealed = await crypto.seal(destination, plaintext, {
        context: request.destinationEncryptionContext,
        aad: request.destinationAdditionalAuthenticatedData,
      });
      return { keyId: destination.keyId, cipherText: encodeCipherText(sealed, encoding) };
    } finally {
      plaintext.fill(0);
    }
  };
}
