import { createSecretKey, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  HEADER_LENGTH,
  type OpenInput,
  OVERHEAD,
  openCiphertext,
  RANDOMNESS_LENGTH,
  readCiphertextHeader,
  type SealInput,
  sealCiphertext,
} from "../../src/crypto/ciphertext.js";
import { CiphertextError, type CiphertextFailure } from "../../src/crypto/ciphertext-error.js";
import {
  type EncryptionContext,
  encodeEncryptionContext,
} from "../../src/crypto/context-encoding.js";
import { bytesToUuid, writeUuid } from "../../src/crypto/uuid-bytes.js";

const KEY_ID = "0d0466b0-e727-4d9c-b35d-f84bb474a37f";
const OTHER_KEY_ID = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
const MATERIAL = Buffer.from(
  "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
  "hex",
);
const VERSION_KEY = createSecretKey(MATERIAL);
const RANDOMNESS = Buffer.from(Array.from({ length: RANDOMNESS_LENGTH }, (_, i) => 0xa0 + i));
// Huawei's base64 budget for cipher_text.
const HUAWEI_MAX_CIPHER_TEXT = 5648;

function seal(overrides: Partial<SealInput> = {}): Buffer {
  return sealCiphertext({
    keyId: KEY_ID,
    keyVersion: 3,
    versionKey: VERSION_KEY,
    plaintext: Buffer.from("attack at dawn", "utf8"),
    randomness: RANDOMNESS,
    ...overrides,
  });
}

function open(ciphertext: Uint8Array, input: Partial<OpenInput> = {}): Buffer {
  return openCiphertext(ciphertext, readCiphertextHeader(ciphertext), {
    versionKey: VERSION_KEY,
    ...input,
  });
}

/** The CiphertextError `fn` throws; fails the test if it returns or throws anything else. */
function failureOf(fn: () => unknown): CiphertextError {
  let returned: unknown;
  try {
    returned = fn();
  } catch (error) {
    expect(error).toBeInstanceOf(CiphertextError);
    return error as CiphertextError;
  }
  throw new Error(`expected a CiphertextError, got a result: ${String(returned)}`);
}

function expectFailure(fn: () => unknown, failure: CiphertextFailure, message?: RegExp): void {
  const error = failureOf(fn);
  expect(error.failure).toBe(failure);
  if (message !== undefined) expect(error.message).toMatch(message);
}

const body = (ciphertext: Buffer) => ciphertext.subarray(HEADER_LENGTH, -16);

describe("sealCiphertext / openCiphertext round trip", () => {
  it("recovers the plaintext and reads back the header", () => {
    const ciphertext = seal({ keyVersion: 0xffffffff });
    expect(ciphertext.length).toBe(OVERHEAD + "attack at dawn".length);
    expect(readCiphertextHeader(ciphertext)).toEqual({
      keyId: KEY_ID,
      keyVersion: 0xffffffff,
      hasContext: false,
      hasAad: false,
    });
    expect(open(ciphertext).toString("utf8")).toBe("attack at dawn");
  });

  it("places salt then IV in the header, in the order the randomness gives them", () => {
    const ciphertext = seal();
    expect(ciphertext.subarray(22, HEADER_LENGTH)).toEqual(RANDOMNESS);
  });

  it("fails authentication under another key version's material", () => {
    const ciphertext = seal();
    expectFailure(
      () => open(ciphertext, { versionKey: createSecretKey(randomBytes(32)) }),
      "authentication",
      /failed authentication/,
    );
  });
});

describe("tampering", () => {
  const context = { tenant: "acme", purpose: "backup" };
  const aad = Buffer.from("order-42");

  // Every single-bit change anywhere must be refused with a CiphertextError,
  // never answered with plaintext; the reason tells which check caught it.
  // Key version 3 keeps any one-bit change of it non-zero, so only the
  // authentication check can catch it.
  it.each([
    {
      name: "with context and AAD",
      sealed: { context, aad },
      flagBit0: "context-unexpected",
      flagBit1: "aad-unexpected",
    },
    {
      name: "without context or AAD",
      sealed: {},
      flagBit0: "context-missing",
      flagBit1: "aad-missing",
    },
  ] as const)("every bit of every byte is protected ($name)", ({ sealed, flagBit0, flagBit1 }) => {
    const ciphertext = seal({ ...sealed, plaintext: Buffer.from("twenty bytes of data") });
    expect(open(ciphertext, sealed).toString()).toBe("twenty bytes of data");
    for (let position = 0; position < ciphertext.length; position++) {
      for (let bit = 0; bit < 8; bit++) {
        const tampered = Buffer.from(ciphertext);
        tampered[position] = (tampered[position] ?? 0) ^ (1 << bit);
        const error = failureOf(() => open(tampered, sealed));
        let expected: CiphertextFailure = "authentication";
        if (position === 0) expected = "malformed";
        if (position === 1) expected = bit === 0 ? flagBit0 : bit === 1 ? flagBit1 : "malformed";
        expect(error.failure, `byte ${position} bit ${bit}`).toBe(expected);
      }
    }
  });

  it("refuses every truncation", () => {
    const ciphertext = seal({ context, aad });
    for (let length = 0; length < ciphertext.length; length++) {
      const truncated = ciphertext.subarray(0, length);
      expectFailure(
        () => open(truncated, { context, aad }),
        length < OVERHEAD + 1 ? "malformed" : "authentication",
      );
    }
    expectFailure(() => open(ciphertext.subarray(1), { context, aad }), "malformed");
  });

  it("refuses the shortest well-formed ciphertext once a byte is cut", () => {
    const ciphertext = seal({ plaintext: Buffer.from("x") });
    expect(ciphertext.length).toBe(OVERHEAD + 1);
    expect(open(ciphertext).toString()).toBe("x");
    expectFailure(() => open(ciphertext.subarray(0, OVERHEAD)), "malformed", /too short/);
  });

  it("refuses extensions", () => {
    const ciphertext = seal({ context, aad });
    for (const extra of [Buffer.of(0), randomBytes(16), ciphertext.subarray(-16)]) {
      expectFailure(
        () => open(Buffer.concat([ciphertext, extra]), { context, aad }),
        "authentication",
      );
    }
  });

  it("refuses unknown format versions, unknown flags and key version 0", () => {
    const ciphertext = seal();
    const v2 = Buffer.from(ciphertext);
    v2[0] = 2;
    expectFailure(() => readCiphertextHeader(v2), "malformed", /format version 2/);
    const flags = Buffer.from(ciphertext);
    flags[1] = 0x04;
    expectFailure(() => readCiphertextHeader(flags), "malformed", /invalid header/);
    const version0 = Buffer.from(ciphertext);
    version0.writeUInt32BE(0, 18);
    expectFailure(() => readCiphertextHeader(version0), "malformed", /invalid header/);
  });
});

describe("encryption context", () => {
  const pairs: Array<[string, string]> = [
    ["tenant", "acme"],
    ["bucket", "b-01"],
    ["10", "ten"],
    ["9", "nine"],
  ];

  function permutations<T>(items: readonly T[]): T[][] {
    if (items.length <= 1) return [[...items]];
    return items.flatMap((item, i) =>
      permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]),
    );
  }

  function contextOf(list: ReadonlyArray<readonly [string, string]>): Record<string, string> {
    // JavaScript enumerates integer-like keys ("10", "9") in numeric order
    // whatever the insertion order; the encoding must sort them by bytes.
    const context: Record<string, string> = {};
    for (const [k, v] of list) context[k] = v;
    return context;
  }

  it("does not depend on the order the pairs are given in", () => {
    const orders = permutations(pairs);
    expect(orders).toHaveLength(24);
    const reference = seal({ context: contextOf(pairs) });
    const encoding = Buffer.from(encodeEncryptionContext(contextOf(pairs)));
    for (const order of orders) {
      const context = contextOf(order);
      expect(Buffer.from(encodeEncryptionContext(context))).toEqual(encoding);
      expect(seal({ context })).toEqual(reference);
      expect(open(reference, { context }).toString()).toBe("attack at dawn");
    }
  });

  it("sorts pairs by the keys' UTF-8 bytes, not by UTF-16 code units", () => {
    // U+FF61 is ef bd a1 in UTF-8, U+1F600 is f0 9f 98 80: UTF-8 puts U+FF61
    // first, UTF-16 (ff61 vs d83d) the emoji.
    const encoded = Buffer.from(encodeEncryptionContext({ "😀": "", "｡": "" })).toString("hex");
    expect(encoded).toBe("00000002" + "00000003efbda100000000" + "00000004f09f988000000000");
  });

  // Pairs of contexts that naive canonicalisations (concatenation, JSON
  // without escaping, separator characters) confuse.
  const nearCollisions: Array<[EncryptionContext, EncryptionContext]> = [
    [{ a: "bc" }, { ab: "c" }],
    [{ a: "b", c: "" }, { a: "bc" }],
    [{ a: "b", c: "" }, { ab: "c" }],
    [{ a: "b" }, { b: "a" }],
    [
      { a: "1", b: "2" },
      { a: "2", b: "1" },
    ],
    [{ ab: "" }, { a: "b" }],
    [{ a: "" }, { a: "\u0000" }],
    [{ a: "b=c" }, { "a=b": "c" }],
    [{ a: "b", c: "d" }, { a: "b\u0000\u0000\u0000\u0001c\u0000\u0000\u0000\u0001d" }],
    [{ k: "v" }, { K: "v" }],
    [{ é: "x" }, { "e\u0301": "x" }],
  ];

  it.each(nearCollisions)("%j and %j encode differently and do not decrypt each other", (a, b) => {
    expect(Buffer.from(encodeEncryptionContext(a))).not.toEqual(
      Buffer.from(encodeEncryptionContext(b)),
    );
    expectFailure(() => open(seal({ context: a }), { context: b }), "authentication");
    expectFailure(() => open(seal({ context: b }), { context: a }), "authentication");
    expect(open(seal({ context: a }), { context: a }).toString()).toBe("attack at dawn");
  });

  it('encodes {"a":"bc"} and {"ab":"c"} as the specification shows', () => {
    expect(Buffer.from(encodeEncryptionContext({ a: "bc" })).toString("hex")).toBe(
      "000000010000000161000000026263",
    );
    expect(Buffer.from(encodeEncryptionContext({ ab: "c" })).toString("hex")).toBe(
      "000000010000000261620000000163",
    );
  });

  it("reports a missing context as context-missing", () => {
    const ciphertext = seal({ context: { tenant: "acme" } });
    for (const context of [undefined, {}]) {
      expectFailure(
        () => open(ciphertext, context === undefined ? {} : { context }),
        "context-missing",
        /encrypted with an encryption_context: decrypt it with the same encryption_context/,
      );
    }
  });

  it("reports an unexpected context as context-unexpected", () => {
    expectFailure(
      () => open(seal(), { context: { tenant: "acme" } }),
      "context-unexpected",
      /encrypted without an encryption_context/,
    );
  });

  it.each([
    ["a different value", { tenant: "acme", purpose: "restore" }],
    ["a different key", { tenant: "acme", Purpose: "backup" }],
    ["an extra pair", { tenant: "acme", purpose: "backup", x: "" }],
    ["a pair less", { tenant: "acme" }],
  ])("reports %s as an authentication failure naming the context", (_, context) => {
    const ciphertext = seal({ context: { tenant: "acme", purpose: "backup" } });
    expectFailure(
      () => open(ciphertext, { context }),
      "authentication",
      /encryption_context or additional_authenticated_data differ/,
    );
  });

  it("treats an empty context exactly as no context", () => {
    const withEmpty = seal({ context: {} });
    expect(withEmpty).toEqual(seal());
    expect(readCiphertextHeader(withEmpty).hasContext).toBe(false);
    expect(open(withEmpty).toString()).toBe("attack at dawn");
    expect(open(withEmpty, { context: {} }).toString()).toBe("attack at dawn");
    expect(open(seal(), { context: {} }).toString()).toBe("attack at dawn");
  });
});

describe("additional authenticated data", () => {
  const aad = Buffer.from("order-42");

  it("round-trips and sets the flag", () => {
    const ciphertext = seal({ aad });
    expect(readCiphertextHeader(ciphertext).hasAad).toBe(true);
    expect(open(ciphertext, { aad }).toString()).toBe("attack at dawn");
  });

  it("reports missing AAD as aad-missing", () => {
    for (const given of [undefined, new Uint8Array(0)]) {
      expectFailure(
        () => open(seal({ aad }), given === undefined ? {} : { aad: given }),
        "aad-missing",
        /encrypted with additional_authenticated_data: decrypt it with the same value/,
      );
    }
  });

  it("reports unexpected AAD as aad-unexpected", () => {
    expectFailure(
      () => open(seal(), { aad }),
      "aad-unexpected",
      /encrypted without additional_authenticated_data/,
    );
  });

  it.each([
    ["a different value", Buffer.from("order-43")],
    ["an extra byte", Buffer.from("order-42\0")],
    ["a byte less", Buffer.from("order-4")],
  ])("reports %s as an authentication failure", (_, given) => {
    expectFailure(
      () => open(seal({ aad }), { aad: given }),
      "authentication",
      /additional_authenticated_data differ/,
    );
  });

  it("treats empty AAD exactly as none", () => {
    expect(seal({ aad: new Uint8Array(0) })).toEqual(seal());
  });

  it("keeps context and AAD apart", () => {
    // The AAD part is length-prefixed after the self-delimiting context, so
    // moving bytes between them changes the authenticated data.
    const ciphertext = seal({ context: { a: "b" }, aad: Buffer.from("c") });
    expectFailure(
      () => open(ciphertext, { context: { a: "bc" }, aad: Buffer.from("c") }),
      "authentication",
    );
    expect(open(ciphertext, { context: { a: "b" }, aad: Buffer.from("c") }).toString()).toBe(
      "attack at dawn",
    );
  });

  it("checks the context before the AAD", () => {
    const ciphertext = seal({ context: { a: "b" }, aad });
    expectFailure(() => open(ciphertext), "context-missing");
    expectFailure(() => open(ciphertext, { context: { a: "b" } }), "aad-missing");
  });
});

describe("the header is bound into the message key", () => {
  // Same material, same IV, same plaintext: GCM's keystream depends only on
  // key and IV, so equal bodies would mean an equal message key.
  it("derives a different message key for another key version", () => {
    expect(body(seal({ keyVersion: 1 }))).not.toEqual(body(seal({ keyVersion: 2 })));
  });

  it("derives a different message key for another key id", () => {
    expect(body(seal({ keyId: KEY_ID }))).not.toEqual(body(seal({ keyId: OTHER_KEY_ID })));
  });

  it("derives a different message key for another salt", () => {
    const otherSalt = Buffer.from(RANDOMNESS);
    otherSalt[0] = (otherSalt[0] ?? 0) ^ 1;
    expect(body(seal({ randomness: otherSalt }))).not.toEqual(body(seal()));
  });

  it("derives the same message key for the same header", () => {
    expect(body(seal())).toEqual(body(seal()));
  });

  it("refuses a ciphertext whose key version was rewritten", () => {
    const ciphertext = seal({ keyVersion: 1 });
    const rewritten = Buffer.from(ciphertext);
    rewritten.writeUInt32BE(2, 18);
    expect(readCiphertextHeader(rewritten).keyVersion).toBe(2);
    expectFailure(() => open(rewritten), "authentication");
  });

  it("refuses a ciphertext whose key id was rewritten", () => {
    const rewritten = Buffer.from(seal());
    writeUuid(OTHER_KEY_ID, rewritten, 2);
    expect(readCiphertextHeader(rewritten).keyId).toBe(OTHER_KEY_ID);
    expectFailure(() => open(rewritten), "authentication");
  });

  it("refuses headers swapped between versions that share the same material", () => {
    const v1 = seal({ keyVersion: 1 });
    const v2 = seal({ keyVersion: 2 });
    const swapped = Buffer.concat([v2.subarray(0, HEADER_LENGTH), v1.subarray(HEADER_LENGTH)]);
    expectFailure(() => open(swapped), "authentication");
  });
});

describe("plaintext sizes", () => {
  function roundTrip(plaintext: Buffer): string {
    const ciphertext = seal({ plaintext, randomness: randomBytes(RANDOMNESS_LENGTH) });
    expect(ciphertext.length).toBe(OVERHEAD + plaintext.length);
    expect(open(ciphertext)).toEqual(plaintext);
    return ciphertext.toString("base64");
  }

  it("round-trips 1 byte in 92 base64 characters", () => {
    expect(roundTrip(Buffer.from("x"))).toHaveLength(92);
  });

  it("round-trips 4096 bytes within Huawei's 5648 characters", () => {
    const encoded = roundTrip(randomBytes(4096));
    expect(encoded).toHaveLength(5552);
    expect(encoded.length).toBeLessThanOrEqual(HUAWEI_MAX_CIPHER_TEXT);
  });

  it.each([
    ["€ (3 bytes) up to the edge", `${"€".repeat(1365)}a`],
    ["4-byte characters", "😀".repeat(1024)],
    ["2-byte characters", "é".repeat(2048)],
  ])("round-trips a 4096-byte UTF-8 string of %s", (_, text) => {
    const plaintext = Buffer.from(text, "utf8");
    expect(plaintext.length).toBe(4096);
    const encoded = roundTrip(plaintext);
    expect(encoded.length).toBeLessThanOrEqual(HUAWEI_MAX_CIPHER_TEXT);
    expect(open(Buffer.from(encoded, "base64")).toString("utf8")).toBe(text);
  });

  it("never makes a ciphertext that it cannot read back, even for an empty plaintext", () => {
    // The format requires n >= 1 (readers refuse anything under 67 bytes):
    // sealing an empty plaintext must either be refused or round-trip.
    let ciphertext: Buffer;
    try {
      ciphertext = seal({ plaintext: new Uint8Array(0) });
    } catch (error) {
      expect(error).toBeInstanceOf(RangeError);
      return;
    }
    expect(open(ciphertext)).toHaveLength(0);
  });
});

describe("sealCiphertext input checks", () => {
  it.each([0, 16, 27, 29, 32])("rejects %i bytes of randomness", (length) => {
    expect(() => seal({ randomness: randomBytes(length) })).toThrow(RangeError);
  });

  it.each([0, -1, 1.5, 2 ** 32, Number.NaN, Number.POSITIVE_INFINITY])(
    "rejects key version %d",
    (keyVersion) => {
      expect(() => seal({ keyVersion })).toThrow(RangeError);
    },
  );

  it.each([
    KEY_ID.toUpperCase(),
    KEY_ID.replaceAll("-", ""),
    `${KEY_ID}0`,
    "0d0466b0-e727-4d9c-b35d-f84bb474a37g",
  ])("rejects key id %s", (keyId) => {
    expect(() => seal({ keyId })).toThrow(TypeError);
  });

  it("makes different ciphertexts from different randomness", () => {
    const a = seal({ randomness: randomBytes(RANDOMNESS_LENGTH) });
    const b = seal({ randomness: randomBytes(RANDOMNESS_LENGTH) });
    expect(a.subarray(22, HEADER_LENGTH)).not.toEqual(b.subarray(22, HEADER_LENGTH));
    expect(body(a)).not.toEqual(body(b));
    expect(open(a).toString()).toBe("attack at dawn");
    expect(open(b).toString()).toBe("attack at dawn");
  });
});

describe("key id bytes", () => {
  it("writes a UUID's 16 bytes in text order, and reads them back", () => {
    const target = Buffer.alloc(20, 0xff);
    writeUuid("00112233-4455-6677-8899-aabbccddeeff", target, 2);
    expect(target.toString("hex")).toBe("ffff00112233445566778899aabbccddeeffffff");
    expect(bytesToUuid(target.subarray(2, 18))).toBe("00112233-4455-6677-8899-aabbccddeeff");
  });

  it.each([
    "00112233-4455-6677-8899-AABBCCDDEEFF",
    "0011223344556677-8899-aabbccddeeff",
    "00112233-4455-6677-8899-aabbccddeef",
    "00112233-4455-6677-8899-aabbccddeegg",
  ])("refuses %s, which is not a lower-case hex UUID", (text) => {
    expect(() => writeUuid(text, Buffer.alloc(16), 0)).toThrow(TypeError);
  });
});
