import { create, type DescMessage, type Message, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  DecryptDataResponseSchema,
  EncryptDataResponseSchema,
  ListKeysResponseSchema,
} from "../../gen/kms/v1/kms_pb.js";
import { flatCodecFor } from "../../src/proto/flat-codec.js";
import { envelopedMessage, singleMessage } from "../../src/transport/rpc/envelope.js";

/** gRPC's framing written out by hand: flags 0, the length as u32be, the message. */
function framedByHand(schema: DescMessage, message: Message): Buffer {
  const bytes = Buffer.from(toBinary(schema, message));
  const header = Buffer.alloc(5);
  header.writeUInt32BE(bytes.length, 1);
  return Buffer.concat([header, bytes]);
}

describe("envelopedMessage", () => {
  const plain = "p".repeat(4096);
  const cases: [string, DescMessage, Message, boolean][] = [
    [
      "a flat message (encoded behind the header)",
      EncryptDataResponseSchema,
      create(EncryptDataResponseSchema, { keyId: "k", cipherText: "Y2lwaGVy" }),
      true,
    ],
    [
      "a large flat message",
      DecryptDataResponseSchema,
      create(DecryptDataResponseSchema, {
        keyId: "k",
        plainText: plain,
        plainTextBase64: Buffer.from(plain).toString("base64"),
        plainTextCrc32c: 7,
      }),
      true,
    ],
    [
      "an empty flat message",
      EncryptDataResponseSchema,
      create(EncryptDataResponseSchema, {}),
      true,
    ],
    [
      "a message the flat codec leaves to protobuf-es",
      ListKeysResponseSchema,
      create(ListKeysResponseSchema, {
        keys: ["a", "b"],
        keyDetails: [{ keyId: "a", keyAlias: "first" }],
        total: 2,
      }),
      false,
    ],
  ];

  it.each(cases)("frames %s as gRPC does", (_name, schema, message, flat) => {
    expect(flatCodecFor(schema) !== undefined && !schema.fields.some(isMap)).toBe(flat);
    const framed = envelopedMessage(schema, message);
    expect(framed).toEqual(framedByHand(schema, message));
    expect(singleMessage(framed)).toEqual(Buffer.from(toBinary(schema, message)));
  });
});

function isMap(field: DescMessage["fields"][number]): boolean {
  return field.fieldKind === "map";
}
