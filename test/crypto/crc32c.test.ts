import { describe, expect, it } from "vitest";
import { crc32c } from "../../src/crypto/crc32c.js";
import { fromHex, toHex } from "../../src/crypto/hex.js";

/** Bit at a time, straight from the definition: an independent implementation to compare with. */
function crc32cBitwise(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

const bytes = (...values: number[]) => Uint8Array.from(values);
const range = (length: number, at: (i: number) => number) =>
  Uint8Array.from({ length }, (_, i) => at(i));

describe("crc32c", () => {
  it("gives the catalogue check value for 123456789 (0xE3069283)", () => {
    expect(crc32c(Buffer.from("123456789", "ascii"))).toBe(0xe3069283);
  });

  it("gives 0 for no data", () => {
    expect(crc32c(new Uint8Array(0))).toBe(0);
  });

  // RFC 3720 appendix B.4. The RFC lists each CRC as transmitted, least
  // significant byte first: "aa 36 91 8a" is 0x8A9136AA.
  it.each([
    ["32 bytes of zeros", range(32, () => 0), 0x8a9136aa],
    ["32 bytes of 0xFF", range(32, () => 0xff), 0x62a8ab43],
    ["32 incrementing bytes 00..1F", range(32, (i) => i), 0x46dd794e],
    ["32 decrementing bytes 1F..00", range(32, (i) => 31 - i), 0x113fdb5c],
    [
      "an iSCSI SCSI Read (10) command PDU",
      bytes(
        ...[0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
        ...[0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14],
        ...[0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00],
        ...[0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
      ),
      0xd9963a56,
    ],
  ])("matches RFC 3720 B.4: %s", (_name, data, expected) => {
    expect(data.length).toBeGreaterThanOrEqual(32);
    expect(crc32c(data)).toBe(expected);
  });

  it("agrees with a bitwise implementation on random data of every length up to 300", () => {
    for (let length = 0; length <= 300; length++) {
      const data = range(length, (i) => (i * 131 + length * 7) & 0xff);
      expect(crc32c(data), `length ${length}`).toBe(crc32cBitwise(data));
    }
  });

  it("continues a checksum over data split anywhere", () => {
    const data = Buffer.from("The quick brown fox jumps over the lazy dog", "ascii");
    const whole = crc32c(data);
    expect(whole).toBe(0x22620404);
    for (let split = 0; split <= data.length; split++) {
      expect(crc32c(data.subarray(split), crc32c(data.subarray(0, split)))).toBe(whole);
    }
  });

  it("reads only the view it is given", () => {
    const backing = Buffer.from("xx123456789yy", "ascii");
    expect(crc32c(backing.subarray(2, 11))).toBe(0xe3069283);
  });
});

describe("hex", () => {
  it("writes upper-case digits, two per byte", () => {
    expect(toHex(bytes(0x00, 0x0f, 0xab, 0xff))).toBe("000FABFF");
    expect(toHex(new Uint8Array(0))).toBe("");
  });

  it("writes only the view it is given", () => {
    expect(toHex(Buffer.from([1, 2, 3, 4]).subarray(1, 3))).toBe("0203");
  });

  it("reads either case", () => {
    expect(fromHex("000fABff")).toEqual(Buffer.from([0x00, 0x0f, 0xab, 0xff]));
    expect(fromHex("")).toEqual(Buffer.alloc(0));
  });

  it.each(["0", "abc", "0g", "zz", "00 11", "0x00", "+1"])("refuses %j", (text) => {
    expect(fromHex(text)).toBeUndefined();
  });
});
