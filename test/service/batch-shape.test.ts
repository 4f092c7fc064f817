/**
 * A batch item is exactly the single call: its fields must stay those of
 * the single request (so each item can be validated and run as one), and a
 * result's those of the single response. Adding a field to EncryptData
 * without adding it to the batch messages fails here.
 */
import type { DescField, DescMessage } from "@bufbuild/protobuf";
import { FeatureSet_FieldPresence } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import {
  BatchDecryptDataItemSchema,
  BatchDecryptDataResultSchema,
  BatchEncryptDataItemSchema,
  BatchEncryptDataResultSchema,
  DecryptDataRequestSchema,
  DecryptDataResponseSchema,
  EncryptDataRequestSchema,
  EncryptDataResponseSchema,
} from "../../gen/kms/v1/kms_pb.js";

/** Name, kind and type of each field, as a comparable shape. */
function shape(schema: DescMessage, without: readonly string[] = []): Record<string, string> {
  return Object.fromEntries(
    schema.fields
      .filter((field) => !without.includes(field.name))
      .map((field: DescField) => {
        const type =
          field.fieldKind === "scalar"
            ? String(field.scalar)
            : field.fieldKind === "map"
              ? `map<${field.mapKey},${field.scalar ?? field.mapKind}>`
              : field.fieldKind;
        return [field.name, type];
      }),
  );
}

/** Pairs of schemas with their type names first, for the test names. */
function named(pairs: [DescMessage, DescMessage][]): [string, string, DescMessage, DescMessage][] {
  return pairs.map(([a, b]) => [a.typeName, b.typeName, a, b]);
}

describe("batch messages mirror the single calls", () => {
  it.each(
    named([
      [BatchEncryptDataItemSchema, EncryptDataRequestSchema],
      [BatchDecryptDataItemSchema, DecryptDataRequestSchema],
    ]),
  )(
    "%s has the fields of %s but project_id and sequence, plus reference",
    (_a, _b, item, single) => {
      expect(shape(item, ["reference"])).toEqual(shape(single, ["project_id", "sequence"]));
      expect(shape(item).reference).toBeDefined();
    },
  );

  it.each(
    named([
      [BatchEncryptDataResultSchema, EncryptDataResponseSchema],
      [BatchDecryptDataResultSchema, DecryptDataResponseSchema],
    ]),
  )("%s has the fields of %s, plus reference and error", (_a, _b, result, single) => {
    expect(shape(result, ["reference", "error"])).toEqual(shape(single));
    // Optional, so a failed item's result shows only its reference and error.
    for (const field of result.fields) {
      if (field.name !== "reference" && field.name !== "error") {
        expect(field.presence, field.name).not.toBe(FeatureSet_FieldPresence.IMPLICIT);
      }
    }
  });
});
