const UUID_LENGTH = 36;
const DASH = 0x2d;
/** Where the text of a UUID has its dashes (8-4-4-4-12 hex digits). */
const isDashAt = (index: number) => index === 8 || index === 13 || index === 18 || index === 23;

/** Lower-case hex digit by char code -> its value; -1 for anything else. */
const HEX_VALUE = new Int8Array(128).fill(-1);
for (let digit = 0; digit < 16; digit++) HEX_VALUE[digit.toString(16).charCodeAt(0)] = digit;

function hexValue(text: string, index: number): number {
  return HEX_VALUE[text.charCodeAt(index)] ?? -1;
}

/**
 * Writes the 16 bytes of a lower-case hex UUID, in the order its text lists
 * them, into `target` at `offset`: sealing writes the key id straight into
 * the ciphertext header. A loop over the characters, not Buffer.write("hex")
 * or a RegExp: this runs on every encryption and they cost several times more.
 */
export function writeUuid(uuid: string, target: Uint8Array, offset: number): void {
  let valid = uuid.length === UUID_LENGTH;
  let out = offset;
  for (let index = 0; valid && index < UUID_LENGTH; index++) {
    if (isDashAt(index)) {
      valid = uuid.charCodeAt(index) === DASH;
      continue;
    }
    const high = hexValue(uuid, index);
    const low = hexValue(uuid, ++index);
    valid = high >= 0 && low >= 0;
    target[out++] = (high << 4) | low;
  }
  if (!valid) throw new TypeError(`not a lower-case hex UUID: ${uuid}`);
}

export function bytesToUuid(bytes: Uint8Array): string {
  const hex = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}
