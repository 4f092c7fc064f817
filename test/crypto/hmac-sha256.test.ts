import { createHmac } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HMAC_SHA256_BYTES, hmacSha256Into } from "../../src/crypto/hmac-sha256.js";

const reference = (key: Uint8Array, message: Uint8Array) =>
  createHmac("sha256", key).update(message).digest();

function mac(key: Uint8Array, message: Uint8Array): Buffer {
  const out = Buffer.alloc(HMAC_SHA256_BYTES);
  hmacSha256Into(key, message, out);
  return out;
}

describe("hmacSha256Into", () => {
  it("matches RFC 4231 test case 2", () => {
    const key = Buffer.from("Jefe");
    const message = Buffer.from("what do ya want for nothing?");
    expect(mac(key, message).toString("hex")).toBe(
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    );
  });

  it("matches createHmac for keys shorter and longer than a block, and long messages", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 150 }),
        fc.uint8Array({ maxLength: 400 }),
        (key, message) => {
          expect(mac(key, message).equals(reference(key, message))).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("leaves no state behind: each call depends only on its key and message", () => {
    const long = Buffer.alloc(300, 1);
    const first = mac(Buffer.alloc(32, 2), Buffer.from("m"));
    mac(Buffer.alloc(100, 3), long);
    expect(mac(Buffer.alloc(32, 2), Buffer.from("m")).equals(first)).toBe(true);
    expect(first.equals(reference(Buffer.alloc(32, 2), Buffer.from("m")))).toBe(true);
  });
});
