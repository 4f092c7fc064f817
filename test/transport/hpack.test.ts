import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  encodeHeaderBlock,
  HeaderDecoder,
  HpackError,
  headerBlockBound,
} from "../../src/transport/http2/hpack.js";
import { decodeHuffman, HuffmanError } from "../../src/transport/http2/huffman.js";
import { HUFFMAN_CODES } from "../../src/transport/http2/huffman-codes.js";

const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ""), "hex");

/** Pairs of a decoded block, for readable expectations. */
function pairs(fields: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < fields.length; i += 2)
    out.push([fields[i] as string, fields[i + 1] as string]);
  return out;
}

/** Huffman-codes `bytes` with RFC 7541's code, padded with 1 bits (what a client's encoder does). */
function huffmanEncode(bytes: Uint8Array, padding = "ones"): Buffer {
  let bits = "";
  for (const byte of bytes) {
    const [code, length] = HUFFMAN_CODES[byte] as readonly [number, number];
    bits += code.toString(2).padStart(length, "0");
  }
  const pad = (8 - (bits.length % 8)) % 8;
  bits += (padding === "ones" ? "1" : "0").repeat(pad);
  const out = Buffer.alloc(bits.length / 8);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(bits.slice(i * 8, i * 8 + 8), 2);
  return out;
}

describe("HPACK decoding: RFC 7541's examples", () => {
  it("C.3: requests without Huffman coding, sharing a dynamic table", () => {
    const decoder = new HeaderDecoder(4096);
    expect(
      pairs(decoder.decode(hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d")).fields),
    ).toEqual([
      [":method", "GET"],
      [":scheme", "http"],
      [":path", "/"],
      [":authority", "www.example.com"],
    ]);
    expect(pairs(decoder.decode(hex("8286 84be 5808 6e6f 2d63 6163 6865")).fields)).toEqual([
      [":method", "GET"],
      [":scheme", "http"],
      [":path", "/"],
      [":authority", "www.example.com"],
      ["cache-control", "no-cache"],
    ]);
    const third = decoder.decode(
      hex("8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"),
    );
    expect(pairs(third.fields)).toEqual([
      [":method", "GET"],
      [":scheme", "https"],
      [":path", "/index.html"],
      [":authority", "www.example.com"],
      ["custom-key", "custom-value"],
    ]);
    // Each field counts its name, value and 32 (RFC 7541 §4.1).
    expect(third.listSize).toBe(
      7 + 3 + 32 + 7 + 5 + 32 + 5 + 11 + 32 + 10 + 15 + 32 + 10 + 12 + 32,
    );
  });

  it("C.4: the same requests Huffman-coded", () => {
    const decoder = new HeaderDecoder(4096);
    expect(
      pairs(decoder.decode(hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff")).fields),
    ).toContainEqual([":authority", "www.example.com"]);
    expect(pairs(decoder.decode(hex("8286 84be 5886 a8eb 1064 9cbf")).fields)).toEqual([
      [":method", "GET"],
      [":scheme", "http"],
      [":path", "/"],
      [":authority", "www.example.com"],
      ["cache-control", "no-cache"],
    ]);
    expect(
      pairs(
        decoder.decode(hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf")).fields,
      ),
    ).toEqual([
      [":method", "GET"],
      [":scheme", "https"],
      [":path", "/index.html"],
      [":authority", "www.example.com"],
      ["custom-key", "custom-value"],
    ]);
  });

  it("C.2: a literal never indexed stays out of the table", () => {
    const decoder = new HeaderDecoder(4096);
    expect(pairs(decoder.decode(hex("1008 7061 7373 776f 7264 0673 6563 7265 74")).fields)).toEqual(
      [["password", "secret"]],
    );
    expect(() => decoder.decode(hex("be"))).toThrow(HpackError);
  });
});

describe("HPACK decoding: the dynamic table", () => {
  it("evicts the oldest entries to stay within its size, and a size update shrinks it", () => {
    const decoder = new HeaderDecoder(100);
    const literal = (name: string, value: string) =>
      Buffer.concat([
        Buffer.from([0x40, name.length]),
        Buffer.from(name),
        Buffer.from([value.length]),
        Buffer.from(value),
      ]);
    // Each entry is 32 + 2 + 8 = 42 bytes: two fit in 100, a third evicts the first.
    decoder.decode(Buffer.concat([literal("aa", "11111111"), literal("bb", "22222222")]));
    expect(pairs(decoder.decode(hex("be bf")).fields)).toEqual([
      ["bb", "22222222"],
      ["aa", "11111111"],
    ]);
    decoder.decode(literal("cc", "33333333"));
    expect(pairs(decoder.decode(hex("be bf")).fields)).toEqual([
      ["cc", "33333333"],
      ["bb", "22222222"],
    ]);
    expect(() => decoder.decode(hex("c0"))).toThrow(/past the table/);
    // A size update to 50 keeps only the newest entry.
    decoder.decode(hex("3f13"));
    expect(pairs(decoder.decode(hex("be")).fields)).toEqual([["cc", "33333333"]]);
    expect(() => decoder.decode(hex("bf"))).toThrow(HpackError);
  });

  it("refuses a size update above the limit, or after a field", () => {
    expect(() => new HeaderDecoder(4096).decode(hex("3fe21f"))).toThrow(/exceeds the limit/);
    expect(() => new HeaderDecoder(4096).decode(hex("82 20"))).toThrow(/follows a field/);
  });

  it("refuses blocks that end early or hold impossible integers", () => {
    const decoder = new HeaderDecoder(4096);
    expect(() => decoder.decode(hex("41 85 6162"))).toThrow(/runs past/);
    expect(() => decoder.decode(hex("ff"))).toThrow(/inside an integer/);
    expect(() => decoder.decode(hex("ff ffffffff 0f"))).toThrow(/too large/);
    expect(() => decoder.decode(hex("80"))).toThrow(/index 0/);
  });
});

describe("Huffman decoding", () => {
  it("decodes whatever RFC 7541's code encodes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const coded = huffmanEncode(bytes);
        expect(decodeHuffman(coded, 0, coded.length)).toBe(Buffer.from(bytes).toString("latin1"));
      }),
      { numRuns: 500 },
    );
  });

  it("refuses padding that is not 1 bits, padding of 8 bits or more, and EOS", () => {
    // "a" is 00011 (5 bits): three bits of padding.
    const zeros = huffmanEncode(Buffer.from("a"), "zeros");
    expect(() => decodeHuffman(zeros, 0, zeros.length)).toThrow(HuffmanError);
    const ones = huffmanEncode(Buffer.from("a"));
    expect(decodeHuffman(ones, 0, ones.length)).toBe("a");
    const longPadding = Buffer.concat([ones, Buffer.from([0xff])]);
    expect(() => decodeHuffman(longPadding, 0, longPadding.length)).toThrow(HuffmanError);
    const eos = Buffer.from([0xff, 0xff, 0xff, 0xff]);
    expect(() => decodeHuffman(eos, 0, eos.length)).toThrow(HuffmanError);
  });
});

describe("HPACK encoding of answers", () => {
  it("writes literals any decoder reads back, :status 200 as its static index", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.stringMatching(/^[a-z][a-z0-9-]{0,40}$/),
            fc.string({
              unit: fc.integer({ min: 0x20, max: 0xff }).map((c) => String.fromCharCode(c)),
              maxLength: 300,
            }),
          ),
          { maxLength: 20 },
        ),
        (list) => {
          const fields = [":status", "200", ...list.flat()];
          const out = Buffer.alloc(headerBlockBound(fields));
          const length = encodeHeaderBlock(fields, out, 0);
          expect(out[0]).toBe(0x88);
          expect(new HeaderDecoder(4096).decode(out.subarray(0, length)).fields).toEqual(fields);
        },
      ),
      { numRuns: 300 },
    );
  });
});
