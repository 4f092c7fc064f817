import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  MATERIAL_LENGTH,
  ROOT_KEY_LENGTH,
  rootKeyId,
  UnwrapError,
  unwrapKeyMaterial,
  WRAP_IV_LENGTH,
  WRAPPED_LENGTH,
  wrapKeyMaterial,
} from "../../src/crypto/key-wrap.js";

const ROOT_KEY = Buffer.alloc(ROOT_KEY_LENGTH, 0x42);
const MATERIAL = Buffer.from(Array.from({ length: MATERIAL_LENGTH }, (_, i) => i));
const IV = Buffer.alloc(WRAP_IV_LENGTH, 0x07);
const BINDING = { keyId: "0d0466b0-e727-4d9c-b35d-f84bb474a37f", version: 3 };

function expectUnwrapError(fn: () => unknown): void {
  expect(fn).toThrow(UnwrapError);
}

describe("wrapKeyMaterial / unwrapKeyMaterial", () => {
  it("round-trips, laid out as IV || ciphertext || tag", () => {
    const wrapped = wrapKeyMaterial(ROOT_KEY, BINDING, MATERIAL, IV);
    expect(wrapped).toHaveLength(WRAPPED_LENGTH);
    expect(WRAPPED_LENGTH).toBe(60);
    expect(wrapped.subarray(0, WRAP_IV_LENGTH)).toEqual(IV);
    expect(wrapped.subarray(WRAP_IV_LENGTH, WRAP_IV_LENGTH + MATERIAL_LENGTH)).not.toEqual(
      MATERIAL,
    );
    expect(unwrapKeyMaterial(ROOT_KEY, BINDING, wrapped)).toEqual(MATERIAL);
  });

  it("matches the layout and AAD docs/ciphertext-format.md describes", async () => {
    // Decrypting with WebCrypto from the documented layout alone checks that
    // the document (IV, AAD bytes, tag position) describes what is stored.
    const wrapped = wrapKeyMaterial(ROOT_KEY, BINDING, MATERIAL, IV);
    const version = new Uint8Array(4);
    new DataView(version.buffer).setUint32(0, BINDING.version);
    const aad = Buffer.concat([
      Buffer.from("kmsd key material v1"),
      Buffer.of(0),
      Buffer.from(BINDING.keyId, "ascii"),
      Buffer.of(0),
      version,
    ]);
    const key = await globalThis.crypto.subtle.importKey("raw", ROOT_KEY, "AES-GCM", false, [
      "decrypt",
    ]);
    const material = await globalThis.crypto.subtle.decrypt(
      { name: "AES-GCM", iv: wrapped.subarray(0, 12), additionalData: aad, tagLength: 128 },
      key,
      wrapped.subarray(12),
    );
    expect(Buffer.from(material)).toEqual(MATERIAL);
  });

  it("wraps differently under different IVs", () => {
    const a = wrapKeyMaterial(ROOT_KEY, BINDING, MATERIAL, randomBytes(WRAP_IV_LENGTH));
    const b = wrapKeyMaterial(ROOT_KEY, BINDING, MATERIAL, randomBytes(WRAP_IV_LENGTH));
    expect(a).not.toEqual(b);
    expect(unwrapKeyMaterial(ROOT_KEY, BINDING, a)).toEqual(MATERIAL);
    expect(unwrapKeyMaterial(ROOT_KEY, BINDING, b)).toEqual(MATERIAL);
  });

  it("does not unwrap under another root key", () => {
    const wrapped = wrapKeyMaterial(ROOT_KEY, BINDING, MATERIAL, IV);
    const other = Buffer.from(ROOT_KEY);
    other[31] = (other[31] ?? 0) ^ 1;
    expectUnwrapError(() => unwrapKeyMaterial(other, BINDING, wrapped));
  });

  it.each([
    ["another key id", { keyId: "3f2504e0-4f89-41d3-9a0c-0305e82c3301", version: 3 }],
    ["the key id in upper case", { keyId: BINDING.keyId.toUpperCase(), version: 3 }],
    ["another version", { keyId: BINDING.keyId, version: 4 }],
    ["version + 256", { keyId: BINDING.keyId, version: 3 + 256 }],
  ])("does not unwrap when bound to %s", (_, binding) => {
    const wrapped = wrapKeyMaterial(ROOT_KEY, BINDING, MATERIAL, IV);
    expectUnwrapError(() => unwrapKeyMaterial(ROOT_KEY, binding, wrapped));
  });

  it("refuses any flipped bit", () => {
    const wrapped = wrapKeyMaterial(ROOT_KEY, BINDING, MATERIAL, IV);
    for (let position = 0; position < wrapped.length; position++) {
      for (let bit = 0; bit < 8; bit++) {
        const tampered = Buffer.from(wrapped);
        tampered[position] = (tampered[position] ?? 0) ^ (1 << bit);
        expectUnwrapError(() => unwrapKeyMaterial(ROOT_KEY, BINDING, tampered));
      }
    }
  });

  it.each([0, WRAPPED_LENGTH - 1, WRAPPED_LENGTH + 1])(
    "refuses wrapped material of %i bytes",
    (length) => {
      const wrapped = wrapKeyMaterial(ROOT_KEY, BINDING, MATERIAL, IV);
      const resized = Buffer.alloc(length);
      wrapped.copy(resized);
      expectUnwrapError(() => unwrapKeyMaterial(ROOT_KEY, BINDING, resized));
    },
  );

  it.each([
    ["root key", () => wrapKeyMaterial(Buffer.alloc(31), BINDING, MATERIAL, IV)],
    ["root key", () => wrapKeyMaterial(Buffer.alloc(33), BINDING, MATERIAL, IV)],
    ["key material", () => wrapKeyMaterial(ROOT_KEY, BINDING, Buffer.alloc(31), IV)],
    ["key material", () => wrapKeyMaterial(ROOT_KEY, BINDING, Buffer.alloc(33), IV)],
    ["IV", () => wrapKeyMaterial(ROOT_KEY, BINDING, MATERIAL, Buffer.alloc(11))],
    ["IV", () => wrapKeyMaterial(ROOT_KEY, BINDING, MATERIAL, Buffer.alloc(16))],
    ["root key", () => unwrapKeyMaterial(Buffer.alloc(16), BINDING, Buffer.alloc(WRAPPED_LENGTH))],
  ])("rejects a %s of the wrong length", (what, fn) => {
    expect(fn).toThrow(RangeError);
    expect(fn).toThrow(what);
  });
});

describe("rootKeyId", () => {
  it("is 32 lower-case hex characters, the same for the same key", () => {
    const id = rootKeyId(ROOT_KEY);
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(rootKeyId(Buffer.from(ROOT_KEY))).toBe(id);
  });

  it("differs between keys", () => {
    const ids = new Set(
      [ROOT_KEY, Buffer.alloc(32), randomBytes(32), randomBytes(32)].map(rootKeyId),
    );
    expect(ids.size).toBe(4);
  });

  it("is the documented HMAC, not the key itself", async () => {
    const key = await globalThis.crypto.subtle.importKey(
      "raw",
      ROOT_KEY,
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    const mac = await globalThis.crypto.subtle.sign(
      "HMAC",
      key,
      new TextEncoder().encode("kmsd root key id v1"),
    );
    expect(rootKeyId(ROOT_KEY)).toBe(Buffer.from(mac).subarray(0, 16).toString("hex"));
    expect(rootKeyId(ROOT_KEY)).not.toContain(ROOT_KEY.subarray(0, 16).toString("hex"));
  });

  it("rejects a root key of the wrong length", () => {
    expect(() => rootKeyId(Buffer.alloc(31))).toThrow(RangeError);
  });
});
