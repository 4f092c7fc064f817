import { fromHex, toHex } from "../crypto/hex.js";
import { kmsError } from "../errors/kms-error.js";

/**
 * How a ciphertext travels: base64 for EncryptData's cipher_text, hex for a
 * data key's (Huawei's two encodings of the same format).
 */
export type CipherTextEncoding = "base64" | "hex";

export function encodeCipherText(ciphertext: Uint8Array, encoding: CipherTextEncoding): string {
  return encoding === "hex" ? toHex(ciphertext) : Buffer.from(ciphertext).toString("base64");
}

/** The ciphertext bytes of a cipher_text; anything but its one accepted spelling is KMS.2201. */
export function decodeCipherText(text: string, encoding: CipherTextEncoding): Buffer {
  if (encoding === "hex") {
    const bytes = fromHex(text);
    if (bytes === undefined)
      throw kmsError("KMS.2201", "cipher_text is not hex (two digits a byte)");
    return bytes;
  }
  const bytes = Buffer.from(text, "base64");
  // Node's decoder is lenient (missing padding, text after "="): accept
  // only the one canonical encoding of a ciphertext.
  if (bytes.toString("base64") !== text) {
    throw kmsError("KMS.2201", "cipher_text is not canonical base64 (RFC 4648, padded)");
  }
  return bytes;
}
