/**
 * Data keys in Huawei's hex formats, gen-random and re-encrypt, shared by
 * the REST, gRPC and Connect suites.
 */
import { createHash } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { expectFailure, versionOf } from "./case-helpers.js";
import { type Kit, str, UNKNOWN_KEY_ID } from "./grpc-cases.js";

const HEX = /^(?:[0-9A-F]{2})+$/;
const invalid = (reason: string, message: string | RegExp) => ({
  code: Code.InvalidArgument,
  reason,
  message,
});
const sha256Hex = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex").toUpperCase();
/** encrypt-datakey's plain_text: hex of the key, then hex of its SHA-256. */
const withDigest = (dataKey: Buffer) => dataKey.toString("hex").toUpperCase() + sha256Hex(dataKey);

export function describeDataKeyCases(kit: () => Kit): void {
  describe("data keys", () => {
    async function keyOf(k: Kit) {
      const project = k.project();
      return { project, keyId: await k.createKey(project) };
    }

    it("create-datakey: a 256-bit key in hex and its hex cipher_text, which decrypt-datakey opens", async () => {
      const k = kit();
      const { project, keyId } = await keyOf(k);
      const created = await k.driver.call("CreateDatakey", { project_id: project, key_id: keyId });
      expect(created).toEqual({
        key_id: keyId,
        plain_text: expect.stringMatching(HEX),
        cipher_text: expect.stringMatching(HEX),
      });
      const plainText = str(created, "plain_text");
      const cipherText = str(created, "cipher_text");
      expect(plainText).toHaveLength(64);
      // A kmsd ciphertext of the 32-byte key: 66 + 32 bytes, two digits each.
      expect(cipherText).toHaveLength(2 * (66 + 32));
      expect(versionOf(cipherText, "hex")).toBe(1);

      const decrypted = await k.driver.call("DecryptDatakey", {
        project_id: project,
        key_id: keyId,
        cipher_text: cipherText,
        datakey_cipher_length: "32",
      });
      expect(decrypted).toEqual({
        data_key: plainText,
        datakey_length: "32",
        datakey_dgst: sha256Hex(Buffer.from(plainText, "hex")),
      });
    });

    it.each([
      [{ key_spec: "AES_128" }, 16],
      [{ key_spec: "AES_256" }, 32],
      [{ datakey_length: "8" }, 1],
      [{ datakey_length: "512" }, 64],
      [{ datakey_length: "8192" }, 1024],
      // Huawei: datakey_length wins when both are given.
      [{ key_spec: "AES_128", datakey_length: "384" }, 48],
    ])("create-datakey with %j makes a key of %d bytes", async (fields, bytes) => {
      const k = kit();
      const { project, keyId } = await keyOf(k);
      const created = await k.driver.call("CreateDatakey", {
        project_id: project,
        key_id: keyId,
        ...fields,
      });
      expect(str(created, "plain_text")).toHaveLength(2 * bytes);
      expect(str(created, "cipher_text")).toHaveLength(2 * (66 + bytes));
      const decrypted = await k.driver.call("DecryptDatakey", {
        project_id: project,
        key_id: keyId,
        cipher_text: str(created, "cipher_text"),
        datakey_cipher_length: String(bytes),
      });
      expect(decrypted.data_key).toBe(created.plain_text);
    });

    it("create-datakey-without-plaintext answers only the key and the cipher_text", async () => {
      const k = kit();
      const { project, keyId } = await keyOf(k);
      const created = await k.driver.call("CreateDatakeyWithoutPlaintext", {
        project_id: project,
        key_id: keyId,
        datakey_length: "128",
      });
      expect(created).toEqual({ key_id: keyId, cipher_text: expect.stringMatching(HEX) });
      const decrypted = await k.driver.call("DecryptDatakey", {
        project_id: project,
        key_id: keyId,
        cipher_text: str(created, "cipher_text"),
        datakey_cipher_length: "16",
      });
      expect(str(decrypted, "data_key")).toMatch(/^[0-9A-F]{32}$/);
      expect(decrypted.datakey_dgst).toBe(
        sha256Hex(Buffer.from(str(decrypted, "data_key"), "hex")),
      );
    });

    it("encrypt-datakey takes hex(key) + hex(SHA-256) in either case; decrypt-datakey gives the key back", async () => {
      const k = kit();
      const { project, keyId } = await keyOf(k);
      for (const dataKey of [
        Buffer.from("00ff10", "hex"),
        Buffer.alloc(64, 0xab),
        Buffer.alloc(1024, 7),
      ]) {
        for (const plainText of [withDigest(dataKey), withDigest(dataKey).toLowerCase()]) {
          const encrypted = await k.driver.call("EncryptDatakey", {
            project_id: project,
            key_id: keyId,
            plain_text: plainText,
            datakey_plain_length: String(dataKey.length),
          });
          expect(encrypted).toEqual({
            key_id: keyId,
            cipher_text: expect.stringMatching(HEX),
            datakey_length: String(dataKey.length),
          });
          expect(str(encrypted, "cipher_text")).toHaveLength(2 * (66 + dataKey.length));
          expect(
            await k.driver.call("DecryptDatakey", {
              project_id: project,
              key_id: keyId,
              cipher_text: str(encrypted, "cipher_text"),
              datakey_cipher_length: String(dataKey.length),
            }),
          ).toEqual({
            data_key: dataKey.toString("hex").toUpperCase(),
            datakey_length: String(dataKey.length),
            datakey_dgst: sha256Hex(dataKey),
          });
        }
      }
    });

    it("encrypt-datakey refuses a digest that does not match the key (KMS.2101)", async () => {
      const k = kit();
      const { project, keyId } = await keyOf(k);
      const dataKey = Buffer.alloc(32, 1);
      const digest = createHash("sha256").update(dataKey).digest();
      digest[31] = (digest[31] ?? 0) ^ 1;
      await expectFailure(
        k,
        "EncryptDatakey",
        {
          project_id: project,
          key_id: keyId,
          plain_text: dataKey.toString("hex") + digest.toString("hex"),
          datakey_plain_length: "32",
        },
        invalid(
          "KMS.2101",
          "the SHA-256 digest in plain_text does not match the data key before it",
        ),
      );
    });

    it("encrypt-datakey refuses a plain_text whose length disagrees with datakey_plain_length (KMS.2101)", async () => {
      const k = kit();
      const { project, keyId } = await keyOf(k);
      await expectFailure(
        k,
        "EncryptDatakey",
        {
          project_id: project,
          key_id: keyId,
          plain_text: withDigest(Buffer.alloc(32, 2)),
          datakey_plain_length: "16",
        },
        invalid(
          "KMS.2101",
          "plain_text holds 64 bytes, but datakey_plain_length 16 needs 48: the data key, then its 32-byte SHA-256 digest",
        ),
      );
    });

    it.each([
      [
        "not hex",
        "zz".repeat(40),
        "KMS.2101",
        "plain_text: does not match regex pattern `^([0-9a-fA-F]{2})+$`",
      ],
      [
        "an odd number of digits",
        "a".repeat(67),
        "KMS.2101",
        "plain_text: does not match regex pattern `^([0-9a-fA-F]{2})+$`",
      ],
      [
        "shorter than a 1-byte key and its digest",
        "ab".repeat(32),
        "KMS.2101",
        "plain_text: must be at least 66 characters",
      ],
    ])(
      "encrypt-datakey with a plain_text that is %s is refused",
      async (_name, plainText, reason, message) => {
        const k = kit();
        await expectFailure(
          k,
          "EncryptDatakey",
          {
            project_id: k.project(),
            key_id: UNKNOWN_KEY_ID,
            plain_text: plainText,
            datakey_plain_length: "1",
          },
          invalid(reason, message),
        );
      },
    );

    it.each(["0", "1025", "x"])("datakey_plain_length %j is KMS.0308", async (length) => {
      const k = kit();
      await expectFailure(
        k,
        "EncryptDatakey",
        {
          project_id: k.project(),
          key_id: UNKNOWN_KEY_ID,
          plain_text: withDigest(Buffer.alloc(1)),
          datakey_plain_length: length,
        },
        invalid(
          "KMS.0308",
          /^datakey_plain_length( must be between 1 and 1024 \(bytes of the data key\)|: does not match regex)/,
        ),
      );
    });

    it("decrypt-datakey checks datakey_cipher_length, the key and the ciphertext (KMS.2201)", async () => {
      const k = kit();
      const { project, keyId } = await keyOf(k);
      const otherKey = await k.createKey(project);
      const cipherText = str(
        await k.driver.call("CreateDatakeyWithoutPlaintext", {
          project_id: project,
          key_id: keyId,
        }),
        "cipher_text",
      );
      const decrypt = {
        project_id: project,
        key_id: keyId,
        cipher_text: cipherText,
        datakey_cipher_length: "32",
      };
      await expectFailure(
        k,
        "DecryptDatakey",
        { ...decrypt, datakey_cipher_length: "16" },
        invalid(
          "KMS.2201",
          "cipher_text holds a data key of 32 bytes, not datakey_cipher_length 16",
        ),
      );
      await expectFailure(
        k,
        "DecryptDatakey",
        { ...decrypt, key_id: otherKey },
        invalid("KMS.2201", `cipher_text was not encrypted under key ${otherKey}`),
      );
      const tampered = cipherText.slice(0, -2) + (cipherText.endsWith("00") ? "01" : "00");
      await expectFailure(
        k,
        "DecryptDatakey",
        { ...decrypt, cipher_text: tampered },
        invalid("KMS.2201", "cipher_text is corrupted: it failed authentication"),
      );
      await expectFailure(
        k,
        "DecryptDatakey",
        { ...decrypt, cipher_text: `${cipherText}0` },
        invalid("KMS.2201", "cipher_text: does not match regex pattern `^([0-9a-fA-F]{2})+$`"),
      );
      await expectFailure(
        k,
        "DecryptDatakey",
        { project_id: project, cipher_text: cipherText, datakey_cipher_length: "32" },
        invalid("KMS.0204", "key_id is required"),
      );
      // A key_id naming no key of the project is the missing key it names.
      await expectFailure(
        k,
        "DecryptDatakey",
        { ...decrypt, key_id: UNKNOWN_KEY_ID },
        {
          code: Code.NotFound,
          reason: "KMS.0207",
          message: `key ${UNKNOWN_KEY_ID} does not exist`,
        },
      );
    });

    it("binds additional_authenticated_data: decrypt-datakey needs the same", async () => {
      const k = kit();
      const { project, keyId } = await keyOf(k);
      const created = await k.driver.call("CreateDatakey", {
        project_id: project,
        key_id: keyId,
        additional_authenticated_data: "bucket=photos",
      });
      const decrypt = {
        project_id: project,
        key_id: keyId,
        cipher_text: str(created, "cipher_text"),
        datakey_cipher_length: "32",
      };
      expect(
        await k.driver.call("DecryptDatakey", {
          ...decrypt,
          additional_authenticated_data: "bucket=photos",
        }),
      ).toMatchObject({ data_key: created.plain_text });
      await expectFailure(
        k,
        "DecryptDatakey",
        decrypt,
        invalid(
          "KMS.2201",
          "cipher_text was encrypted with additional_authenticated_data: decrypt it with the same value",
        ),
      );
      await expectFailure(
        k,
        "DecryptDatakey",
        { ...decrypt, additional_authenticated_data: "bucket=videos" },
        invalid(
          "KMS.2201",
          "cipher_text is corrupted, or the encryption_context or additional_authenticated_data differ from the ones it was encrypted with",
        ),
      );
    });

    it("a data key made before rotations still decrypts after them", async () => {
      const k = kit();
      const { project, keyId } = await keyOf(k);
      const created = await k.driver.call("CreateDatakey", { project_id: project, key_id: keyId });
      await k.driver.call("RotateOnDemand", { project_id: project, key_id: keyId });
      await k.driver.call("RotateOnDemand", { project_id: project, key_id: keyId });
      const newer = await k.driver.call("CreateDatakey", { project_id: project, key_id: keyId });
      expect(versionOf(str(newer, "cipher_text"), "hex")).toBe(3);
      for (const made of [created, newer]) {
        expect(
          await k.driver.call("DecryptDatakey", {
            project_id: project,
            key_id: keyId,
            cipher_text: str(made, "cipher_text"),
            datakey_cipher_length: "32",
          }),
        ).toMatchObject({ data_key: made.plain_text });
      }
    });

    it("a disabled key makes no data key (KMS.0209)", async () => {
      const k = kit();
      const { project, keyId } = await keyOf(k);
      await k.driver.call("DisableKey", { project_id: project, key_id: keyId });
      await expectFailure(
        k,
        "CreateDatakey",
        { project_id: project, key_id: keyId },
        {
          code: Code.FailedPrecondition,
          reason: "KMS.0209",
          message: `key ${keyId} is disabled`,
        },
      );
    });

    it.each([
      [{ datakey_length: "7" }, "datakey_length must be a multiple of 8 from 8 to 8192 (bits)"],
      [{ datakey_length: "8200" }, "datakey_length must be a multiple of 8 from 8 to 8192 (bits)"],
      [{ key_spec: "SM4" }, "key_spec: must be in list [AES_256, AES_128]"],
    ])("create-datakey with %j is KMS.0308", async (fields, message) => {
      const k = kit();
      await expectFailure(
        k,
        "CreateDatakey",
        { project_id: k.project(), key_id: UNKNOWN_KEY_ID, ...fields },
        invalid("KMS.0308", message),
      );
    });
  });

  describe("gen-random", () => {
    it.each([8, 256, 8192])("answers %d random bits in hex, fresh each time", async (bits) => {
      const k = kit();
      const project = k.project();
      const first = str(
        await k.driver.call("GenRandom", { project_id: project, random_data_length: String(bits) }),
        "random_data",
      );
      const second = str(
        await k.driver.call("GenRandom", { project_id: project, random_data_length: String(bits) }),
        "random_data",
      );
      expect(first).toMatch(HEX);
      expect(first).toHaveLength(bits / 4);
      if (bits >= 256) expect(second).not.toBe(first);
    });

    it.each(["0", "4", "12", "8200", "ten"])(
      "random_data_length %j is KMS.0308",
      async (length) => {
        const k = kit();
        await expectFailure(
          k,
          "GenRandom",
          { project_id: k.project(), random_data_length: length },
          invalid(
            "KMS.0308",
            /^random_data_length( must be a multiple of 8 from 8 to 8192 \(bits\)|: does not match regex)/,
          ),
        );
      },
    );

    it("a missing random_data_length is KMS.0204", async () => {
      const k = kit();
      await expectFailure(
        k,
        "GenRandom",
        { project_id: k.project() },
        invalid("KMS.0204", "random_data_length is required"),
      );
    });
  });
}
