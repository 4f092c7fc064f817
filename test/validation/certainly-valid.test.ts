import { create, type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DecryptDataRequestSchema,
  EncryptDataRequestSchema,
  KmsService,
} from "../../gen/kms/v1/kms_pb.js";
import { certainlyValidCheck } from "../../src/validation/certainly-valid.js";
import { matchRegex } from "../../src/validation/request-validator.js";

const protovalidate = createValidator({ regexMatch: matchRegex });

const KEY_ID = "0d0466b0-e727-4d9c-b35d-f84bb474a37f";

/**
 * Strings near every rule's edges: the lengths the proto names and one off,
 * code points that take several UTF-8 bytes or two UTF-16 units, lone
 * surrogates, the `in` lists' members, and random text.
 */
const edgeStrings = [
  "",
  "a",
  KEY_ID,
  KEY_ID.toUpperCase(),
  `${KEY_ID}0`,
  "0a1b2c3d4e5f_-XYZ",
  "SYMMETRIC_DEFAULT",
  "symmetric_default",
  "RSAES_OAEP_SHA_256",
  "SM2_ENCRYPT",
  ...[35, 36, 37, 63, 64, 65, 91, 92, 93, 128, 129, 4096, 4097, 5648, 5649].map((n) =>
    "A".repeat(n),
  ),
  "é".repeat(36),
  "😀".repeat(36),
  "😀".repeat(18),
  "\uD800".repeat(36),
  `${"a".repeat(35)}\uDC00`,
  "é".repeat(64),
  "é".repeat(65),
  "é".repeat(2048),
  "é".repeat(2049),
  "😀".repeat(1024),
  "😀".repeat(1025),
  "\uD800".repeat(1366),
  "\uD800".repeat(1365),
  "é".repeat(43),
  "A+/=",
  "A-_".repeat(31),
];

const anyString = fc.oneof(
  fc.constantFrom(...edgeStrings),
  fc.string(),
  fc.string({ unit: "binary" }),
  fc.string({ unit: "grapheme", maxLength: 40 }),
);

/**
 * The edge strings protovalidate finds no fault with in this field: drawn
 * more often, so that whole messages are often valid and the property
 * tests the admitted side, not only refusals.
 */
function acceptedAlone(schema: DescMessage, field: DescField): string[] {
  return edgeStrings.filter((value) => {
    const result = protovalidate.validate(schema, create(schema, { [field.localName]: value }));
    return result.kind !== "invalid" || !result.violations.some((v) => v.field[0] === field);
  });
}

function fieldValue(schema: DescMessage, field: DescField): fc.Arbitrary<unknown> | undefined {
  if (field.fieldKind === "scalar" && field.scalar === ScalarType.STRING) {
    const accepted = acceptedAlone(schema, field);
    if (accepted.length === 0) return anyString;
    return fc.oneof(
      { arbitrary: fc.constantFrom(...accepted), weight: 6 },
      { arbitrary: anyString, weight: 1 },
    );
  }
  if (field.fieldKind === "map" && field.mapKey === ScalarType.STRING) {
    return fc.dictionary(anyString, anyString, { maxKeys: 4 });
  }
  return undefined;
}

/** Messages of a schema with every string and string map drawn from the edges above. */
function messages(schema: DescMessage) {
  const shape: Record<string, fc.Arbitrary<unknown>> = {};
  for (const field of schema.fields) {
    const value = fieldValue(schema, field);
    if (value !== undefined) shape[field.localName] = value;
  }
  return fc.record(shape).map((init) => create(schema, init));
}

const requestSchemas = [...new Set(KmsService.methods.map((method) => method.input))];

describe("certainlyValidCheck", () => {
  it("covers the data requests, and leaves rules it does not know to protovalidate", () => {
    const covered = requestSchemas
      .filter((schema) => certainlyValidCheck(schema, matchRegex) !== undefined)
      .map((schema) => schema.name);
    expect(covered).toContain("EncryptDataRequest");
    expect(covered).toContain("DecryptDataRequest");
    // CEL rules (ListKeys' limit) and nested messages (the batches) are not understood.
    expect(covered).not.toContain("ListKeysRequest");
    expect(covered).not.toContain("BatchEncryptDataRequest");
  });

  it("admits typical valid requests, so they skip protovalidate", () => {
    const encrypt = certainlyValidCheck(EncryptDataRequestSchema, matchRegex);
    const decrypt = certainlyValidCheck(DecryptDataRequestSchema, matchRegex);
    expect(
      encrypt?.(
        create(EncryptDataRequestSchema, {
          projectId: "p1",
          keyId: KEY_ID,
          plainText: "x",
          encryptionContext: { purpose: "test" },
          encryptionAlgorithm: "SYMMETRIC_DEFAULT",
        }),
      ),
    ).toBe(true);
    expect(
      decrypt?.(create(DecryptDataRequestSchema, { projectId: "p1", cipherText: "A".repeat(92) })),
    ).toBe(true);
    expect(
      encrypt?.(
        create(EncryptDataRequestSchema, { projectId: "p1", keyId: KEY_ID, plainText: "" }),
      ),
    ).toBe(false);
  });

  for (const schema of requestSchemas) {
    const check = certainlyValidCheck(schema, matchRegex);
    if (check === undefined) continue;
    it(`${schema.name}: whatever it calls valid, protovalidate calls valid`, () => {
      let admitted = 0;
      fc.assert(
        fc.property(messages(schema), (message) => {
          if (!check(message)) return;
          admitted++;
          expect(protovalidate.validate(schema, message).kind).toBe("valid");
        }),
        { numRuns: 3000 },
      );
      // Not vacuous: many drawn messages are admitted, so the property
      // compares the two on valid messages too, not only on refusals.
      expect(admitted).toBeGreaterThan(100);
    });
  }
});
