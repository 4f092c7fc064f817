/**
 * BatchEncryptData and BatchDecryptData, shared by the REST, gRPC and
 * Connect suites: results in request order, references echoed, and every
 * failed item carrying exactly what the single call would have answered.
 */
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { crc32c } from "../../src/crypto/crc32c.js";
import { expectFailure } from "./case-helpers.js";
import { type Kit, type KmsReply, type KmsRequest, str, UNKNOWN_KEY_ID } from "./grpc-cases.js";

type Item = KmsRequest & { reference?: string };
type Result = KmsReply & { reference: string; error?: { error_code: string; error_msg: string } };

async function batch(
  k: Kit,
  method: "BatchEncryptData" | "BatchDecryptData",
  project: string,
  items: Item[],
) {
  const reply = await k.driver.call(method, { project_id: project, items });
  return reply.items as Result[];
}

/** What the single call answers for an item: its error, as a batch result would carry it. */
async function singleError(
  k: Kit,
  method: "EncryptData" | "DecryptData",
  project: string,
  item: Item,
) {
  const { reference: _reference, ...fields } = item;
  const error = await k.driver.fail(method, { ...fields, project_id: project });
  return { error_code: error.reason, error_msg: error.message };
}

export function describeBatchCases(kit: () => Kit): void {
  describe("BatchEncryptData and BatchDecryptData", () => {
    it("round-trip items in request order, echoing each reference", async () => {
      const k = kit();
      const project = k.project();
      const first = await k.createKey(project);
      const second = await k.createKey(project);
      const items: Item[] = Array.from({ length: 12 }, (_, i) => ({
        reference: `ref-${i}`,
        key_id: i % 3 === 0 ? second : first,
        plain_text: `item ${i} ✓`,
        ...(i % 2 === 0 ? { encryption_context: { row: String(i) } } : {}),
        ...(i % 4 === 1 ? { additional_authenticated_data: `aad-${i}` } : {}),
      }));
      const encrypted = await batch(k, "BatchEncryptData", project, items);
      expect(encrypted.map((result) => [result.reference, result.key_id])).toEqual(
        items.map((item) => [item.reference, item.key_id]),
      );
      for (const result of encrypted) {
        expect(Object.keys(result).sort()).toEqual(["cipher_text", "key_id", "reference"]);
      }

      const decrypted = await batch(
        k,
        "BatchDecryptData",
        project,
        items.map((item, i) => ({
          reference: `back-${i}`,
          cipher_text: str(encrypted[i], "cipher_text"),
          ...(item.encryption_context === undefined
            ? {}
            : { encryption_context: item.encryption_context }),
          ...(item.additional_authenticated_data === undefined
            ? {}
            : { additional_authenticated_data: item.additional_authenticated_data }),
        })),
      );
      expect(decrypted).toEqual(
        items.map((item, i) => ({
          reference: `back-${i}`,
          key_id: item.key_id,
          plain_text: item.plain_text,
          plain_text_base64: Buffer.from(String(item.plain_text)).toString("base64"),
        })),
      );
      // Each batch cipher_text is an ordinary one.
      expect(
        await k.driver.call("DecryptData", {
          project_id: project,
          cipher_text: str(encrypted[3], "cipher_text"),
        }),
      ).toMatchObject({ plain_text: "item 3 ✓" });
    });

    it("a failed encrypt item carries the single call's code and message; the others succeed", async () => {
      const k = kit();
      const project = k.project();
      const keyId = await k.createKey(project);
      const disabled = await k.createKey(project);
      await k.driver.call("DisableKey", { project_id: project, key_id: disabled });
      const bad: [string, Item][] = [
        ["KMS.0207", { key_id: UNKNOWN_KEY_ID, plain_text: "x" }],
        ["KMS.0205", { key_id: "not-a-key", plain_text: "x" }],
        ["KMS.0204", { key_id: keyId, plain_text: "" }],
        ["KMS.2101", { key_id: keyId, plain_text: "y".repeat(4097) }],
        ["KMS.0208", { key_id: keyId, plain_text: "x", encryption_context: { "": "empty key" } }],
        ["KMS.0209", { key_id: disabled, plain_text: "x" }],
        ["KMS.2105", { key_id: keyId, plain_text: "x", encryption_algorithm: "SM2_ENCRYPT" }],
        [
          "KMS.0308",
          { key_id: keyId, plain_text: "x", additional_authenticated_data: "a".repeat(129) },
        ],
        [
          "KMS.2101",
          { key_id: keyId, plain_text: "x", plain_text_crc32c: crc32c(Buffer.from("z")) },
        ],
      ];
      const items: Item[] = [];
      bad.forEach(([, item], i) => {
        items.push({ reference: `good-${i}`, key_id: keyId, plain_text: `good ${i}` });
        items.push({ reference: `bad-${i}`, ...item });
      });

      const results = await batch(k, "BatchEncryptData", project, items);

      expect(results.map((result) => result.reference)).toEqual(
        items.map((item) => item.reference),
      );
      for (const [i, [code, item]] of bad.entries()) {
        const good = results[2 * i];
        expect(good, `good-${i}`).toMatchObject({ key_id: keyId, cipher_text: expect.any(String) });
        expect(good?.error, `good-${i}`).toBeUndefined();
        const failed = results[2 * i + 1];
        expect(failed, `bad-${i}`).toEqual({
          reference: `bad-${i}`,
          error: await singleError(k, "EncryptData", project, item),
        });
        expect(failed?.error?.error_code, `bad-${i}`).toBe(code);
      }
    });

    it("a failed decrypt item carries the single call's code and message; the others succeed", async () => {
      const k = kit();
      const project = k.project();
      const keyId = await k.createKey(project);
      const good = await k.encrypt(project, keyId, "fine", { a: "1" });
      const bytes = Buffer.from(good, "base64");
      bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 1;
      const foreignProject = k.project();
      const foreign = await k.encrypt(foreignProject, await k.createKey(foreignProject), "theirs");
      const bad: Item[] = [
        { cipher_text: bytes.toString("base64"), encryption_context: { a: "1" } },
        { cipher_text: good, encryption_context: { a: "2" } },
        { cipher_text: good },
        { cipher_text: foreign },
        { cipher_text: `${good.slice(0, -4)}` },
        { cipher_text: "" },
        { cipher_text: good, encryption_context: { a: "1" }, key_id: UNKNOWN_KEY_ID },
        { cipher_text: good, encryption_context: { a: "1" }, cipher_text_crc32c: 1 },
      ];
      const items: Item[] = [
        { reference: "first", cipher_text: good, encryption_context: { a: "1" } },
        ...bad.map((item, i) => ({ reference: `bad-${i}`, ...item })),
        { reference: "last", cipher_text: good, encryption_context: { a: "1" } },
      ];

      const results = await batch(k, "BatchDecryptData", project, items);

      expect(results[0]).toEqual({
        reference: "first",
        key_id: keyId,
        plain_text: "fine",
        plain_text_base64: Buffer.from("fine").toString("base64"),
      });
      expect(results.at(-1)).toEqual({ ...results[0], reference: "last" });
      for (const [i, item] of bad.entries()) {
        expect(results[i + 1], `bad-${i}`).toEqual({
          reference: `bad-${i}`,
          error: await singleError(k, "DecryptData", project, item),
        });
      }
      expect(results.slice(1, -1).map((result) => result.error?.error_code)).toEqual([
        "KMS.2201",
        "KMS.2201",
        "KMS.2201",
        "KMS.2201",
        "KMS.2201",
        "KMS.0204",
        "KMS.2201",
        "KMS.2201",
      ]);
    });

    it("an item without a reference is answered with an empty one; a reference over 256 characters fails only its item", async () => {
      const k = kit();
      const project = k.project();
      const keyId = await k.createKey(project);
      const results = await batch(k, "BatchEncryptData", project, [
        { key_id: keyId, plain_text: "no reference" },
        { reference: "r".repeat(257), key_id: keyId, plain_text: "long reference" },
        { reference: "r".repeat(256), key_id: keyId, plain_text: "longest reference" },
      ]);
      expect(results[0]).toMatchObject({ reference: "", key_id: keyId });
      expect(results[1]).toEqual({
        reference: "r".repeat(257),
        error: { error_code: "KMS.0308", error_msg: "reference: must be at most 256 characters" },
      });
      expect(results[2]).toMatchObject({ reference: "r".repeat(256), key_id: keyId });
    });

    it("items carry their own checksums and verified flags", async () => {
      const k = kit();
      const project = k.project();
      const keyId = await k.createKey(project);
      const [checked, unchecked] = await batch(k, "BatchEncryptData", project, [
        {
          reference: "checked",
          key_id: keyId,
          plain_text: "abc",
          plain_text_crc32c: crc32c(Buffer.from("abc")),
        },
        { reference: "unchecked", key_id: keyId, plain_text: "abc" },
      ]);
      expect(checked).toEqual({
        reference: "checked",
        key_id: keyId,
        cipher_text: expect.any(String),
        cipher_text_crc32c: crc32c(Buffer.from(str(checked, "cipher_text"), "base64")),
        verified_plain_text_crc32c: true,
        verified_encryption_context_crc32c: false,
        verified_additional_authenticated_data_crc32c: false,
      });
      expect(Object.keys(unchecked ?? {}).sort()).toEqual(["cipher_text", "key_id", "reference"]);
    });

    it("an empty batch is KMS.0204; more than 1000 items refuse the whole request (KMS.0308)", async () => {
      const k = kit();
      const project = k.project();
      await expectFailure(
        k,
        "BatchEncryptData",
        { project_id: project, items: [] },
        {
          code: Code.InvalidArgument,
          reason: "KMS.0204",
          message: "items is required",
        },
      );
      const keyId = await k.createKey(project);
      const items = Array.from({ length: 1001 }, () => ({ key_id: keyId, plain_text: "x" }));
      await expectFailure(
        k,
        "BatchEncryptData",
        { project_id: project, items },
        {
          code: Code.InvalidArgument,
          reason: "KMS.0308",
          message: "items: must contain no more than 1000 item(s)",
        },
      );
      await expectFailure(
        k,
        "BatchDecryptData",
        { project_id: project, items: items.map(() => ({ cipher_text: "A".repeat(92) })) },
        {
          code: Code.InvalidArgument,
          reason: "KMS.0308",
          message: "items: must contain no more than 1000 item(s)",
        },
      );
    });

    it("1000 items are one request", async () => {
      const k = kit();
      const project = k.project();
      const keyId = await k.createKey(project);
      const items = Array.from({ length: 1000 }, (_, i) => ({
        reference: String(i),
        key_id: keyId,
        plain_text: `#${i}`,
      }));
      const encrypted = await batch(k, "BatchEncryptData", project, items);
      expect(encrypted).toHaveLength(1000);
      const decrypted = await batch(
        k,
        "BatchDecryptData",
        project,
        encrypted.map((result) => ({
          reference: result.reference,
          cipher_text: str(result, "cipher_text"),
        })),
      );
      expect(decrypted.map((result) => result.plain_text)).toEqual(
        items.map((item) => item.plain_text),
      );
    });

    it("another project's items are not reachable, and a user token may batch", async () => {
      const k = kit();
      const owner = k.project();
      const keyId = await k.createKey(owner);
      const stranger = k.project();
      const user = { kind: "x-auth-token", token: await k.tokens.userFor(stranger) } as const;
      const reply = await k.driver.call(
        "BatchEncryptData",
        { project_id: stranger, items: [{ reference: "theirs", key_id: keyId, plain_text: "x" }] },
        user,
      );
      expect(reply.items).toEqual([
        {
          reference: "theirs",
          error: { error_code: "KMS.0207", error_msg: `key ${keyId} does not exist` },
        },
      ]);
    });
  });
}
