/**
 * re-encrypt and the newer optional encrypt/decrypt fields
 * (additional_authenticated_data, encryption_algorithm), shared by the REST,
 * gRPC and Connect suites.
 */
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { expectFailure, versionOf } from "./case-helpers.js";
import { type Kit, str, UNKNOWN_KEY_ID } from "./grpc-cases.js";

const invalid = (reason: string, message: string | RegExp) => ({
  code: Code.InvalidArgument,
  reason,
  message,
});
const CONTEXT_DIFFERS =
  "cipher_text is corrupted, or the encryption_context or additional_authenticated_data differ from the ones it was encrypted with";

export function describeReEncryptCases(kit: () => Kit): void {
  describe("re-encrypt", () => {
    it("moves a cipher_text to another key and context; both the old and the new decrypt", async () => {
      const k = kit();
      const project = k.project();
      const source = await k.createKey(project);
      const destination = await k.createKey(project);
      const old = await k.encrypt(project, source, "moving house", { home: "old" });
      const moved = await k.driver.call("ReEncrypt", {
        project_id: project,
        cipher_text: old,
        source_key_id: source,
        source_encryption_context: { home: "old" },
        destination_key_id: destination,
        destination_encryption_context: { home: "new" },
        destination_additional_authenticated_data: "v2",
      });
      expect(moved).toEqual({
        key_id: destination,
        cipher_text: expect.stringMatching(/^[A-Za-z0-9+/]+=*$/),
      });
      expect(
        await k.driver.call("DecryptData", {
          project_id: project,
          cipher_text: str(moved, "cipher_text"),
          encryption_context: { home: "new" },
          additional_authenticated_data: "v2",
        }),
      ).toMatchObject({ key_id: destination, plain_text: "moving house" });
      expect(
        await k.driver.call("DecryptData", {
          project_id: project,
          cipher_text: old,
          encryption_context: { home: "old" },
        }),
      ).toMatchObject({ key_id: source, plain_text: "moving house" });
    });

    it("re-encrypting under the cipher_text's own key moves it to the newest version", async () => {
      const k = kit();
      const project = k.project();
      const keyId = await k.createKey(project);
      const old = await k.encrypt(project, keyId, "bring me forward");
      await k.driver.call("RotateOnDemand", { project_id: project, key_id: keyId });
      await k.driver.call("RotateOnDemand", { project_id: project, key_id: keyId });
      const moved = str(
        await k.driver.call("ReEncrypt", {
          project_id: project,
          cipher_text: old,
          destination_key_id: keyId,
        }),
        "cipher_text",
      );
      expect([versionOf(old), versionOf(moved)]).toEqual([1, 3]);
      expect(
        await k.driver.call("DecryptData", { project_id: project, cipher_text: moved }),
      ).toMatchObject({ plain_text: "bring me forward" });
    });

    it("re-encrypts a data key's hex cipher_text when datakey_cipher_length is given, answering hex", async () => {
      const k = kit();
      const project = k.project();
      const source = await k.createKey(project);
      const destination = await k.createKey(project);
      const created = await k.driver.call("CreateDatakey", {
        project_id: project,
        key_id: source,
        key_spec: "AES_128",
        additional_authenticated_data: "dek-1",
      });
      const moved = await k.driver.call("ReEncrypt", {
        project_id: project,
        cipher_text: str(created, "cipher_text"),
        datakey_cipher_length: "16",
        source_additional_authenticated_data: "dek-1",
        destination_key_id: destination,
      });
      const movedText = str(moved, "cipher_text");
      expect(movedText).toMatch(/^[0-9A-F]{164}$/);
      expect(
        await k.driver.call("DecryptDatakey", {
          project_id: project,
          key_id: destination,
          cipher_text: movedText,
          datakey_cipher_length: "16",
        }),
      ).toMatchObject({ data_key: created.plain_text, datakey_length: "16" });
    });

    it("refuses a wrong source context, source key or data key length (KMS.2201) and decrypts nothing", async () => {
      const k = kit();
      const project = k.project();
      const source = await k.createKey(project);
      const other = await k.createKey(project);
      const cipherText = await k.encrypt(project, source, "x", { a: "1" });
      const base = { project_id: project, cipher_text: cipherText, destination_key_id: other };
      await expectFailure(
        k,
        "ReEncrypt",
        { ...base, source_encryption_context: { a: "2" } },
        invalid("KMS.2201", CONTEXT_DIFFERS),
      );
      await expectFailure(
        k,
        "ReEncrypt",
        { ...base, source_encryption_context: { a: "1" }, source_key_id: other },
        invalid("KMS.2201", `cipher_text was not encrypted under key ${other}`),
      );
      await expectFailure(
        k,
        "ReEncrypt",
        base,
        invalid(
          "KMS.2201",
          "cipher_text was encrypted with an encryption_context: decrypt it with the same encryption_context",
        ),
      );
    });

    it("checks the destination key: unknown is KMS.0207, disabled KMS.0209, an asymmetric algorithm KMS.2105", async () => {
      const k = kit();
      const project = k.project();
      const source = await k.createKey(project);
      const disabled = await k.createKey(project);
      await k.driver.call("DisableKey", { project_id: project, key_id: disabled });
      const cipherText = await k.encrypt(project, source, "x");
      const base = { project_id: project, cipher_text: cipherText };
      await expectFailure(
        k,
        "ReEncrypt",
        { ...base, destination_key_id: UNKNOWN_KEY_ID },
        {
          code: Code.NotFound,
          reason: "KMS.0207",
          message: `key ${UNKNOWN_KEY_ID} does not exist`,
        },
      );
      await expectFailure(
        k,
        "ReEncrypt",
        { ...base, destination_key_id: source, source_key_id: UNKNOWN_KEY_ID },
        {
          code: Code.NotFound,
          reason: "KMS.0207",
          message: `key ${UNKNOWN_KEY_ID} does not exist`,
        },
      );
      await expectFailure(
        k,
        "ReEncrypt",
        { ...base, destination_key_id: disabled },
        {
          code: Code.FailedPrecondition,
          reason: "KMS.0209",
          message: `key ${disabled} is disabled`,
        },
      );
      await expectFailure(
        k,
        "ReEncrypt",
        { ...base, destination_key_id: source, destination_encryption_algorithm: "SM2_ENCRYPT" },
        invalid(
          "KMS.2105",
          `destination_encryption_algorithm SM2_ENCRYPT is not supported by key ${source}, a symmetric AES_256 key: use SYMMETRIC_DEFAULT`,
        ),
      );
      await expectFailure(
        k,
        "ReEncrypt",
        { ...base, destination_key_id: source, source_encryption_algorithm: "RSAES_OAEP_SHA_256" },
        invalid(
          "KMS.2105",
          `source_encryption_algorithm RSAES_OAEP_SHA_256 is not supported by key ${source}, a symmetric AES_256 key: use SYMMETRIC_DEFAULT`,
        ),
      );
    });

    it("a missing destination_key_id is KMS.0204", async () => {
      const k = kit();
      await expectFailure(
        k,
        "ReEncrypt",
        { project_id: k.project(), cipher_text: "A".repeat(92) },
        invalid("KMS.0204", "destination_key_id is required"),
      );
    });
  });

  describe("additional_authenticated_data and encryption_algorithm on encrypt-data and decrypt-data", () => {
    it("binds the AAD: decrypt needs the same string, and says what is wrong otherwise", async () => {
      const k = kit();
      const project = k.project();
      const keyId = await k.createKey(project);
      const aad = "é".repeat(64); // 128 bytes: the most allowed.
      const encrypted = await k.driver.call("EncryptData", {
        project_id: project,
        key_id: keyId,
        plain_text: "bound",
        additional_authenticated_data: aad,
        encryption_algorithm: "SYMMETRIC_DEFAULT",
      });
      const cipherText = str(encrypted, "cipher_text");
      // Flag bit 1 of the format: AAD bound.
      expect(Buffer.from(cipherText, "base64")[1]).toBe(0b10);
      const decrypt = { project_id: project, cipher_text: cipherText };
      expect(
        await k.driver.call("DecryptData", {
          ...decrypt,
          additional_authenticated_data: aad,
          encryption_algorithm: "SYMMETRIC_DEFAULT",
        }),
      ).toMatchObject({ plain_text: "bound" });
      await expectFailure(
        k,
        "DecryptData",
        decrypt,
        invalid(
          "KMS.2201",
          "cipher_text was encrypted with additional_authenticated_data: decrypt it with the same value",
        ),
      );
      await expectFailure(
        k,
        "DecryptData",
        { ...decrypt, additional_authenticated_data: "other" },
        invalid("KMS.2201", CONTEXT_DIFFERS),
      );
      const plain = await k.encrypt(project, keyId, "not bound");
      await expectFailure(
        k,
        "DecryptData",
        { project_id: project, cipher_text: plain, additional_authenticated_data: "extra" },
        invalid(
          "KMS.2201",
          "cipher_text was encrypted without additional_authenticated_data: decrypt it without one",
        ),
      );
    });

    it("an AAD over 128 bytes is KMS.0308", async () => {
      const k = kit();
      await expectFailure(
        k,
        "EncryptData",
        {
          project_id: k.project(),
          key_id: UNKNOWN_KEY_ID,
          plain_text: "x",
          additional_authenticated_data: `${"é".repeat(64)}x`,
        },
        invalid("KMS.0308", "additional_authenticated_data: must be at most 128 bytes"),
      );
    });

    it("an asymmetric encryption_algorithm on a symmetric key is KMS.2105; an unknown one KMS.0308", async () => {
      const k = kit();
      const project = k.project();
      const keyId = await k.createKey(project);
      await expectFailure(
        k,
        "EncryptData",
        {
          project_id: project,
          key_id: keyId,
          plain_text: "x",
          encryption_algorithm: "RSAES_OAEP_SHA_256",
        },
        invalid(
          "KMS.2105",
          `encryption_algorithm RSAES_OAEP_SHA_256 is not supported by key ${keyId}, a symmetric AES_256 key: use SYMMETRIC_DEFAULT`,
        ),
      );
      const cipherText = await k.encrypt(project, keyId, "x");
      await expectFailure(
        k,
        "DecryptData",
        { project_id: project, cipher_text: cipherText, encryption_algorithm: "SM2_ENCRYPT" },
        invalid(
          "KMS.2105",
          `encryption_algorithm SM2_ENCRYPT is not supported by key ${keyId}, a symmetric AES_256 key: use SYMMETRIC_DEFAULT`,
        ),
      );
      await expectFailure(
        k,
        "EncryptData",
        { project_id: project, key_id: keyId, plain_text: "x", encryption_algorithm: "AES_GCM" },
        invalid(
          "KMS.0308",
          "encryption_algorithm: must be in list [SYMMETRIC_DEFAULT, RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, SM2_ENCRYPT]",
        ),
      );
    });

    it("create-key with a spec kmsd does not create yet is refused and leaves no key behind", async () => {
      const k = kit();
      const project = k.project();
      const refused: Record<string, string>[] = [
        { key_spec: "RSA_2048" },
        { key_usage: "SIGN_VERIFY" },
        { origin: "external" },
      ];
      for (const fields of refused) {
        const error = await k.driver.fail("CreateKey", {
          project_id: project,
          key_alias: "half",
          ...fields,
        });
        expect(error.reason).toBe("KMS.0308");
      }
      expect(await k.driver.call("ListKeys", { project_id: project })).toMatchObject({
        keys: [],
        total: 0,
      });
      // The alias was never taken.
      expect(await k.createKey(project, "half")).toMatch(/^[0-9a-f-]{36}$/);
    });
  });
}
