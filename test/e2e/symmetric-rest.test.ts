/**
 * The symmetric-API case table over Huawei's REST paths (plain fetch). The
 * same table runs over gRPC (grpc.test.ts) and Connect (connect.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAuditRecord } from "../../src/audit/record-text.js";
import type { AuditRecord } from "../../src/keystore/audit-types.js";
import { openSqliteStore } from "../../src/keystore/sqlite/sqlite-store.js";
import { type RunningKmsd, removeDir, startKmsd } from "../support/kmsd.js";
import { Kit, ProjectTokens } from "./grpc-cases.js";
import { restDriver } from "./rest-driver.js";
import { createKeyRest, expectError, expectOk, kms } from "./rest-helpers.js";
import { describeSymmetricCases } from "./symmetric-cases.js";

let kmsd: RunningKmsd;
let kit: Kit;

beforeAll(async () => {
  kmsd = await startKmsd();
  const tokens = await ProjectTokens.open(kmsd, "rest-home");
  kit = new Kit(restDriver(kmsd.url, tokens), tokens, "rs");
});

afterAll(async () => {
  await kmsd?.stop();
  if (kmsd !== undefined) await removeDir(kmsd.config.dataDir);
});

describe("kms.v1.KmsService over Huawei's REST paths", () => {
  describeSymmetricCases(() => kit);
});

describe("REST specifics", () => {
  const project = "rs-wire";

  async function post(operation: string, body: unknown) {
    return kms(kmsd, project, operation, body);
  }

  it("get-key-rotation-status answers Huawei's JSON types: a boolean and numbers", async () => {
    const keyId = await createKeyRest(kmsd, project, "wire-types");
    const reply = await post("get-key-rotation-status", { key_id: keyId });
    expectOk(reply);
    expect(reply.text).toBe(
      '{"key_rotation_enabled":false,"rotation_interval":365,"last_rotation_time":"","number_of_rotations":0}',
    );
    expect((await post("enable-key-rotation", { key_id: keyId })).text).toBe("{}");
  });

  it.each([
    ["2^32", 2 ** 32],
    ["negative", -1],
    ["a fraction", 1.5],
    ["text", "abc"],
  ])("a plain_text_crc32c that is %s is KMS.2101", async (name, value) => {
    const keyId = await createKeyRest(kmsd, project, `crc-${name.replace(/\W/g, "_")}`);
    const reply = await post("encrypt-data", {
      key_id: keyId,
      plain_text: "x",
      plain_text_crc32c: value,
    });
    expect(expectError(reply, 400, "KMS.2101")).toMatch(/^plain_text_crc32c has an invalid value/);
  });

  it("a batch is audited as one record counting its items, without plaintext or ciphertext", async () => {
    const keyId = await createKeyRest(kmsd, project, "audited");
    const secret = "audit-must-not-see-this";
    const encrypted = expectOk(
      await post("batch-encrypt-data", {
        items: [1, 2, 3].map((i) => ({
          reference: `r${i}`,
          key_id: keyId,
          plain_text: `${secret}-${i}`,
        })),
      }),
    ) as { items: { cipher_text: string }[] };
    expectOk(
      await post("batch-decrypt-data", {
        items: [
          ...encrypted.items.map((item) => ({ cipher_text: item.cipher_text })),
          { cipher_text: "not a cipher_text" },
        ],
      }),
    );
    const store = await openSqliteStore({ dataDir: kmsd.config.dataDir });
    try {
      let records: AuditRecord[] = [];
      for (let tries = 0; tries < 50; tries++) {
        records = (await store.readAudit({ projectId: project, limit: 1000 }))
          .map(parseAuditRecord)
          .filter((record) => record.operation.startsWith("Batch"));
        if (records.length === 2) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(records.map((record) => [record.operation, record.keyId, record.outcome])).toEqual([
        ["BatchEncryptData[3]", keyId, "OK"],
        ["BatchDecryptData[4]", keyId, "OK"],
      ]);
      const written = JSON.stringify(records);
      expect(written).not.toContain(secret);
      for (const item of encrypted.items) expect(written).not.toContain(item.cipher_text);
    } finally {
      await store.close();
    }
  });
});
