/**
 * Huawei's hex strings (data keys, random data): two characters per byte.
 * kmsd writes upper-case digits, as Huawei's examples do, and reads either case.
 */

const HEX = /^(?:[0-9a-fA-F]{2})*$/;

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    .toString("hex")
    .toUpperCase();
}

/** The bytes of a hex string; undefined unless it is whole bytes of hex digits. */
export function fromHex(text: string): Buffer | undefined {
  // Buffer.from(text, "hex") silently stops at the first bad digit.
  return HEX.test(text) ? Buffer.from(text, "hex") : undefined;
}
