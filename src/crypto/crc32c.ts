/**
 * CRC-32C (Castagnoli; RFC 3720 appendix B.4): the checksum Google Cloud
 * KMS uses for end-to-end integrity, so clients can reuse their libraries.
 * Reflected polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF.
 */

const POLYNOMIAL = 0x82f63b78;

const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let bit = 0; bit < 8; bit++) c = c & 1 ? (c >>> 1) ^ POLYNOMIAL : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/**
 * The CRC-32C of `data`, as an unsigned 32-bit integer. Pass the result of a
 * previous call as `previous` to checksum data arriving in pieces.
 */
export function crc32c(data: Uint8Array, previous = 0): number {
  let crc = ~previous >>> 0;
  for (let i = 0; i < data.length; i++) {
    // Both indexes are in range: a byte, and a byte-masked value.
    crc = (TABLE[(crc ^ (data[i] as number)) & 0xff] as number) ^ (crc >>> 8);
  }
  return ~crc >>> 0;
}
