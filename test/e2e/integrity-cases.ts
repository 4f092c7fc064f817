/**
 * End-to-end integrity (CRC32C, as Google Cloud KMS offers it) on
 * encrypt-data and decrypt-data, shared by the REST, gRPC and Connect suites.
 */
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { crc32c } from "../../src/crypto/crc32c.js";
import { expectFailure } from "./case-helpers.js";
import { type Kit, type KmsReply, str, UNKNOWN_KEY_ID } from "./grpc-cases.js";

const invalid = (reason: string, message: string) => ({
  code: Code.InvalidArgument,
  reason,
  message,
});
const mismatch = (field: string) =>
  `${field}_crc32c does not match ${field}: the request was corrupted on its way; compute the checksum again and retry`;

/**
 * The canonical context encoding of docs/ciphertext-format.md, written from
 * the document: u32be count, then per pair sorted by UTF-8 key bytes,
 * u32be length || key || u32be length || value.
 */
export function contextBytes(context: Record<string, string>): Buffer {
  const pairs = Object.entries(context)
    .map(([key, value]) => [Buffer.from(key), Buffer.from(value)] as const)
    .sort(([a], [b]) => Buffer.compare(a, b));
  const u32 = (n: number) => {
    const out = Buffer.alloc(4);
    out.writeUInt32BE(n);
    return out;
  };
  return Buffer.concat([
    u32(pairs.length),
    ...pairs.flatMap(([k, v]) => [u32(k.length), k, u32(v.length), v]),
  ]);
}

/** The integrity fields of a reply (absent ones left out). */
function integrityOf(reply: KmsReply): Record<string, unknown> {
  return Object.fromEntries(Object.entries(reply).filter(([name]) => name.endsWith("_crc32c")));
}

export function describeIntegrityCases(kit: () => Kit): void {
  describe("CRC32C integrity on encrypt-data and decrypt-data", () => {
    async function keyOf(k: Kit) {
      const project = k.project();
      return { project, keyId: await k.createKey(project) };
    }

    it("verifies every checksum given and returns the result's checksum", async () => {
      const k = kit();
      const { project, keyId } = await keyOf(k);
      const plainText = "integrity ✓";
      // Listed out of order: the checksum covers the canonical encoding.
      const context = { tenant: "acme", bucket: "b-1" };
      const aad = "aad";
      const encrypted = await k.driver.call("EncryptData", {
        project_id: project,
        key_id: keyId,
        plain_text: plainText,
        encryption_context: context,
        additional_authenticated_data: aad,
        plain_text_crc32c: crc32c(Buffer.from(plainText)),
        encryption_context_crc32c: crc32c(contextBytes({ bucket: "b-1", tenant: "acme" })),
        additional_authenticated_data_crc32c: crc32c(Buffer.from(aad)),
      });
      const cipherText = str(encrypted, "cipher_text");
      expect(encrypted).toEqual({
        key_id: keyId,
        cipher_text: cipherText,
        cipher_text_crc32c: crc32c(Buffer.from(cipherText, "base64")),
        verified_plain_text_crc32c: true,
        verified_encryption_context_crc32c: true,
        verified_additional_authenticated_data_crc32c: true,
      });

      const decrypted = await k.driver.call("DecryptData", {
        project_id: project,
        cipher_text: cipherText,
        encryption_context: context,
        additional_authenticated_data: aad,
        cipher_text_crc32c: crc32c(Buffer.from(cipherText, "base64")),
      });
      expect(decrypted).toEqual({
        key_id: keyId,
        plain_text: plainText,
        plain_text_base64: Buffer.from(plainText).toString("base64"),
        plain_text_crc32c: crc32c(Buffer.from(plainText)),
        verified_cipher_text_crc32c: true,
        verified_encryption_context_crc32c: false,
        verified_additional_authenticated_data_crc32c: false,
      });
    });

    it("says false for each checksum the request did not carry; no context is checksummed as 00000000", async () => {
      const k = kit();
      const { project, keyId } = await keyOf(k);
      const encrypted = await k.driver.call("EncryptData", {
        project_id: project,
        key_id: keyId,
        plain_text: "x",
        encryption_context_crc32c: crc32c(Buffer.alloc(4)),
      });
      expect(integrityOf(encrypted)).toEqual({
        cipher_text_crc32c: crc32c(Buffer.from(str(encrypted, "cipher_text"), "base64")),
        verified_plain_text_crc32c: false,
        verified_encryption_context_crc32c: true,
        verified_additional_authenticated_data_crc32c: false,
      });
    });

    it("a request without checksums gets Huawei's response, without integrity fields", async () => {
      const k = kit();
      const { project, keyId } = await keyOf(k);
      const encrypted = await k.driver.call("EncryptData", {
        project_id: project,
        key_id: keyId,
        plain_text: "x",
      });
      expect(integrityOf(encrypted)).toEqual({});
      expect(Object.keys(encrypted).sort()).toEqual(["cipher_text", "key_id"]);
      const decrypted = await k.driver.call("DecryptData", {
        project_id: project,
        cipher_text: str(encrypted, "cipher_text"),
      });
      expect(Object.keys(decrypted).sort()).toEqual(["key_id", "plain_text", "plain_text_base64"]);
    });

    it("a plain_text checksum mismatch is KMS.2101, refused before the key is even looked up", async () => {
      const k = kit();
      // The key does not exist: had anything but the checksum run first, this would be KMS.0207.
      await expectFailure(
        k,
        "EncryptData",
        {
          project_id: k.project(),
          key_id: UNKNOWN_KEY_ID,
          plain_text: "sent",
          plain_text_crc32c: crc32c(Buffer.from("sent but corrupted")),
        },
        invalid("KMS.2101", mismatch("plain_text")),
      );
    });

    it("context and AAD checksum mismatches are KMS.0208 and KMS.0308", async () => {
      const k = kit();
      const { project, keyId } = await keyOf(k);
      const base = {
        project_id: project,
        key_id: keyId,
        plain_text: "x",
        encryption_context: { a: "1" },
      };
      await expectFailure(
        k,
        "EncryptData",
        // A checksum over the JSON, not the canonical encoding, does not match.
        { ...base, encryption_context_crc32c: crc32c(Buffer.from('{"a":"1"}')) },
        invalid("KMS.0208", mismatch("encryption_context")),
      );
      await expectFailure(
        k,
        "EncryptData",
        {
          ...base,
          additional_authenticated_data: "y",
          additional_authenticated_data_crc32c: crc32c(Buffer.from("z")),
        },
        invalid("KMS.0308", mismatch("additional_authenticated_data")),
      );
    });

    it("a cipher_text checksum mismatch is KMS.2201 before decrypting, even for another project's cipher_text", async () => {
      const k = kit();
      const { project, keyId } = await keyOf(k);
      const cipherText = await k.encrypt(project, keyId, "x");
      const bytes = Buffer.from(cipherText, "base64");
      await expectFailure(
        k,
        "DecryptData",
        {
          project_id: k.project(),
          cipher_text: cipherText,
          cipher_text_crc32c: (crc32c(bytes) ^ 1) >>> 0,
        },
        invalid("KMS.2201", mismatch("cipher_text")),
      );
      // The same request with the right checksum gets past the check (and on to the key lookup).
      await expectFailure(
        k,
        "DecryptData",
        { project_id: k.project(), cipher_text: cipherText, cipher_text_crc32c: crc32c(bytes) },
        invalid("KMS.2201", "cipher_text names a key that does not exist in this project"),
      );
    });
  });
}
