import {
  create,
  type DescMessage,
  fromBinary,
  fromJson,
  hasOption,
  type JsonObject,
  ScalarType,
  toBinary,
  toJson,
  toJsonString,
} from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DecryptDataRequestSchema,
  DecryptDataResponseSchema,
  EncryptDataRequestSchema,
  EncryptDataResponseSchema,
  KmsService,
} from "../../gen/kms/v1/kms_pb.js";
import { encoded_binary } from "../../gen/kms/v1/rules_pb.js";
import { flatCodecFor } from "../../src/proto/flat-codec.js";

/** Every request and response type of the service the flat codec takes. */
const flatSchemas = [
  ...new Set(KmsService.methods.flatMap((method) => [method.input, method.output])),
].filter((schema) => flatCodecFor(schema) !== undefined);

/** Characters JSON escapes: the controls, the quote and the backslash. */
const CONTROLS = ["\n", "\u0000", "\u001f"];
const ODD = ['"', "\\", "é", "\u2028", "\ud83d\ude00"];

/**
 * Texts long enough for the verbatim check (256 characters and more):
 * mostly plain ASCII, sometimes with a character JSON escapes or a
 * non-ASCII one somewhere (no lone surrogate: a protobuf string is valid
 * Unicode, and protobuf-es refuses one). Without control characters for the
 * fields marked (kms.v1.encoded_binary): those are outside the mark's
 * contract (see its tests below).
 */
function longText(withControls: boolean): fc.Arbitrary<string> {
  return fc
    .tuple(
      fc.string({
        unit: fc.constantFrom("a", "Z", "0", " ", "~", "\x7f"),
        minLength: 256,
        maxLength: 4096,
      }),
      fc.oneof(fc.constant(""), fc.constantFrom(...ODD, ...(withControls ? CONTROLS : []))),
      fc.nat(),
    )
    .map(([plain, odd, at]) => {
      const cut = at % (plain.length + 1);
      return plain.slice(0, cut) + odd + plain.slice(cut);
    });
}
const shortText = fc.string({ unit: "grapheme", maxLength: 40 });
const text = fc.oneof(
  { weight: 4, arbitrary: shortText },
  { weight: 1, arbitrary: longText(true) },
);
const encodedText = fc.oneof(
  { weight: 4, arbitrary: shortText },
  { weight: 1, arbitrary: longText(false) },
);

/** Random init values for a flat message: every field set or not, zero values included. */
function arbitraryInit(schema: DescMessage): fc.Arbitrary<Record<string, unknown>> {
  const fields: Record<string, fc.Arbitrary<unknown>> = {};
  for (const field of schema.fields) {
    if (field.fieldKind === "map") {
      // (A "__proto__" key is left to protobuf-es: a test of its own below.)
      const key = text.filter((candidate) => candidate !== "__proto__");
      fields[field.localName] = fc.dictionary(key, text, { maxKeys: 4 });
    } else if (field.fieldKind === "scalar" && field.scalar === ScalarType.STRING) {
      const values = hasOption(field, encoded_binary) ? encodedText : text;
      fields[field.localName] = fc.oneof(fc.constant(""), values);
    } else if (field.fieldKind === "scalar" && field.scalar === ScalarType.BOOL) {
      fields[field.localName] = fc.boolean();
    } else {
      fields[field.localName] = fc.oneof(
        fc.constantFrom(0, 1, 127, 128, 0xffffffff),
        fc.integer({ min: 0, max: 0xffffffff }),
      );
    }
  }
  return fc.record(fields, { requiredKeys: [] });
}

/** The JSON options kmsd writes with (see huaweiJsonOptions). */
const huaweiJson = { useProtoFieldName: true, alwaysEmitImplicit: true } as const;

const decodeWithProtobufEs = (schema: DescMessage, bytes: Uint8Array) =>
  fromBinary(schema, bytes, { readUnknownFields: false });

describe("the flat protobuf codec", () => {
  it("takes the hot path's messages", () => {
    for (const schema of [
      EncryptDataRequestSchema,
      EncryptDataResponseSchema,
      DecryptDataRequestSchema,
      DecryptDataResponseSchema,
    ]) {
      expect(flatCodecFor(schema), schema.typeName).toBeDefined();
    }
    expect(flatSchemas.length).toBeGreaterThan(10);
  });

  it.each(flatSchemas.map((schema) => [schema.typeName, schema] as const))(
    "%s: decodes what protobuf-es encodes, to what protobuf-es decodes",
    (_name, schema) => {
      const codec = flatCodecFor(schema);
      fc.assert(
        fc.property(arbitraryInit(schema), (init) => {
          const bytes = toBinary(schema, create(schema, init));
          const decoded = codec?.decode(bytes);
          expect(decoded).toBeDefined();
          expect(decoded).toStrictEqual(decodeWithProtobufEs(schema, bytes));
        }),
        { numRuns: 150 },
      );
    },
  );

  it.each(flatSchemas.map((schema) => [schema.typeName, schema] as const))(
    "%s: writes the bytes and the Huawei JSON protobuf-es writes, or leaves the message to it",
    (_name, schema) => {
      const codec = flatCodecFor(schema);
      const hasMap = schema.fields.some((field) => field.fieldKind === "map");
      fc.assert(
        fc.property(arbitraryInit(schema), (init) => {
          const message = create(schema, init);
          const encoded = codec?.encode(message);
          const written = codec?.toJson(message);
          if (hasMap) {
            expect(encoded).toBeUndefined();
            expect(written).toBeUndefined();
            return;
          }
          const reference = Buffer.from(toBinary(schema, message));
          expect(Buffer.from(encoded ?? [])).toEqual(reference);
          // With headroom: the same bytes behind it (gRPC's envelope header goes there).
          const behindHeadroom = codec?.encode(message, 5);
          expect(behindHeadroom?.length).toBe(5 + reference.length);
          expect(behindHeadroom?.subarray(5)).toEqual(reference);
          expect(written).toBe(toJsonString(schema, message, huaweiJson));
        }),
        { numRuns: 150 },
      );
    },
  );

  it("on arbitrary bytes, either agrees with protobuf-es or leaves them to it", () => {
    const codec = flatCodecFor(EncryptDataRequestSchema);
    const valid = toBinary(
      EncryptDataRequestSchema,
      create(EncryptDataRequestSchema, {
        projectId: "p",
        keyId: "k",
        plainText: "hello",
        encryptionContext: { a: "b" },
        plainTextCrc32c: 7,
      }),
    );
    const mutated = fc
      .tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 }))
      .map(([at, byte]) => Buffer.from(valid).fill(byte, at, at + 1));
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), mutated), (bytes) => {
        const decoded = codec?.decode(bytes);
        if (decoded === undefined) return;
        expect(decoded).toStrictEqual(decodeWithProtobufEs(EncryptDataRequestSchema, bytes));
      }),
      { numRuns: 2000 },
    );
  });

  it("leaves unknown fields, invalid UTF-8, a __proto__ key and odd wire types to protobuf-es", () => {
    const codec = flatCodecFor(EncryptDataRequestSchema);
    const cases = {
      "unknown field 99": [0x9a, 0x06, 0x01, 0x78],
      "invalid UTF-8 in key_id": [0x12, 0x02, 0xc3, 0x28],
      "__proto__ as a context key": [
        0x22,
        0x0f,
        0x0a,
        0x09,
        ...Buffer.from("__proto__"),
        0x12,
        0x02,
        0x61,
        0x62,
      ],
      "key_id sent as a varint": [0x10, 0x01],
      "a truncated string": [0x12, 0x05, 0x61],
    };
    for (const [name, bytes] of Object.entries(cases)) {
      expect(codec?.decode(Uint8Array.from(bytes)), name).toBeUndefined();
    }
    const response = flatCodecFor(EncryptDataResponseSchema);
    // verified_plain_text_crc32c (field 4, a bool) sent as 2.
    expect(response?.decode(Uint8Array.from([0x20, 0x02]))).toBeUndefined();
  });

  it.each(flatSchemas.map((schema) => [schema.typeName, schema] as const))(
    "%s: reads JSON as protobuf-es reads it, by either field name, unknown keys ignored",
    (_name, schema) => {
      const codec = flatCodecFor(schema);
      fc.assert(
        fc.property(
          arbitraryInit(schema),
          fc.boolean(),
          fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 2 }),
          (init, protoNames, unknown) => {
            const known = toJson(schema, create(schema, init), {
              useProtoFieldName: protoNames,
            }) as JsonObject;
            const names = new Set(schema.fields.flatMap((field) => [field.name, field.jsonName]));
            const extra = Object.fromEntries(
              Object.entries(unknown).filter(([key]) => !names.has(key) && key !== "__proto__"),
            );
            const json = { ...extra, ...known } as JsonObject;
            const decoded = codec?.fromJson(json);
            expect(decoded).toBeDefined();
            expect(decoded).toStrictEqual(fromJson(schema, json, { ignoreUnknownFields: true }));
          },
        ),
        { numRuns: 150 },
      );
    },
  );

  it("on arbitrary JSON values, either agrees with protobuf-es or leaves them to it", () => {
    const schema = EncryptDataRequestSchema;
    const codec = flatCodecFor(schema);
    const names = schema.fields.flatMap((field) => [field.name, field.jsonName]);
    const values = fc.oneof(
      fc.jsonValue({ maxDepth: 2 }),
      fc.dictionary(fc.constantFrom("a", "__proto__", "b"), fc.jsonValue({ maxDepth: 0 })),
    );
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...names, "other"), values), (json) => {
        const decoded = codec?.fromJson(json as unknown as JsonObject);
        if (decoded === undefined) return;
        expect(decoded).toStrictEqual(
          fromJson(schema, json as unknown as JsonObject, { ignoreUnknownFields: true }),
        );
      }),
      { numRuns: 2000 },
    );
  });

  it("writes a long text verbatim only when JSON.stringify would: every character JSON escapes, anywhere, is escaped", () => {
    const codec = flatCodecFor(DecryptDataResponseSchema);
    const plain = "x".repeat(4095);
    // What JSON.stringify escapes, and a lone surrogate, which it escapes too
    // (a plaintext decoded from UTF-8 never holds one; a text from elsewhere might).
    const escaped = [
      ...Array.from({ length: 0x20 }, (_, code) => String.fromCharCode(code)),
      '"',
      "\\",
      "\ud800",
      "\udfff",
    ];
    const answer = (plainText: string) =>
      codec?.toJson(
        create(DecryptDataResponseSchema, { keyId: "k", plainText, plainTextBase64: "" }),
      );
    expect(answer(`${plain}y`)).toBe(
      `{"key_id":"k","plain_text":"${plain}y","plain_text_base64":""}`,
    );
    for (const character of escaped) {
      for (const at of [0, 2048, 4095]) {
        const plainText = plain.slice(0, at) + character + plain.slice(at);
        expect(answer(plainText)).toBe(
          `{"key_id":"k","plain_text":${JSON.stringify(plainText)},"plain_text_base64":""}`,
        );
        expect(JSON.parse(answer(plainText) ?? "").plain_text).toBe(plainText);
      }
    }
  });

  describe("fields marked (kms.v1.encoded_binary)", () => {
    const marked = (schema: DescMessage) =>
      schema.fields.filter((field) => hasOption(field, encoded_binary)).map((field) => field.name);

    it("are exactly the hot path's base64 answers, and never a request's field", () => {
      const requests = new Set<DescMessage>();
      const walk = (schema: DescMessage) => {
        if (requests.has(schema)) return;
        requests.add(schema);
        for (const field of schema.fields) if (field.message !== undefined) walk(field.message);
      };
      for (const method of KmsService.methods) walk(method.input);
      for (const schema of requests) expect(marked(schema), schema.typeName).toEqual([]);
      const markedAnswers = KmsService.methods
        .map((method) => method.output)
        .filter((schema) => marked(schema).length > 0)
        .map((schema) => `${schema.typeName}: ${marked(schema).join(", ")}`);
      expect([...new Set(markedAnswers)].sort()).toEqual([
        "kms.v1.DecryptDataResponse: plain_text_base64",
        "kms.v1.EncryptDataResponse: cipher_text",
      ]);
    });

    // Control characters are outside the mark's contract (base64 or hex that
    // kmsd made): they would be written raw. Printable text, quotes and
    // backslashes included, is not.
    it("are written as protobuf-es writes them: base64, or any printable text", () => {
      const codec = flatCodecFor(DecryptDataResponseSchema);
      const base64 = fc
        .uint8Array({ maxLength: 300 })
        .map((bytes) => Buffer.from(bytes).toString("base64"));
      fc.assert(
        fc.property(fc.oneof(base64, encodedText), text, (plainTextBase64, plainText) => {
          const message = create(DecryptDataResponseSchema, {
            keyId: "k",
            plainText,
            plainTextBase64,
          });
          const written = codec?.toJson(message);
          expect(written).toBe(toJsonString(DecryptDataResponseSchema, message, huaweiJson));
          expect(JSON.parse(written ?? "")).toMatchObject({ plain_text_base64: plainTextBase64 });
        }),
        { numRuns: 500 },
      );
    });

    it("are escaped when they hold a quote or a backslash, so a wrong mark cannot break the JSON", () => {
      const codec = flatCodecFor(EncryptDataResponseSchema);
      for (const cipherText of ['ab"c', "ab\\c", '","key_id":"forged', "\\u0041"]) {
        const message = create(EncryptDataResponseSchema, { keyId: "k", cipherText });
        const written = codec?.toJson(message) ?? "";
        expect(written).toBe(toJsonString(EncryptDataResponseSchema, message, huaweiJson));
        expect(JSON.parse(written)).toEqual({ key_id: "k", cipher_text: cipherText });
      }
    });
  });
});
