import { hash } from "node:crypto";

/** SHA-256's block size: HMAC pads its key to it. */
const BLOCK_BYTES = 64;
export const HMAC_SHA256_BYTES = 32;
const INNER_PAD = 0x36;
const OUTER_PAD = 0x5c;

/**
 * The inner hash's input (key ^ ipad, then the message) and the outer's
 * (key ^ opad, then the inner digest). Module-level, since every call is
 * synchronous; both are wiped before a call returns.
 */
let innerInput = Buffer.alloc(BLOCK_BYTES + 128);
const outerInput = Buffer.alloc(BLOCK_BYTES + HMAC_SHA256_BYTES);

/**
 * HMAC-SHA256 (RFC 2104) from two one-shot `crypto.hash` calls, written
 * into `out` (32 bytes): byte for byte what
 * `createHmac("sha256", key).update(message).digest()` returns, at about
 * half its cost. createHmac makes a native HMAC context and a JS object
 * around it for every message, which the per-message key derivation paid on
 * every request; the digests come back as latin1 ("binary") strings because a Buffer
 * result costs its own backing store (docs/benchmarks.md, "The message key").
 */
export function hmacSha256Into(key: Uint8Array, message: Uint8Array, out: Buffer): void {
  const blockKey = key.length > BLOCK_BYTES ? hash("sha256", key, "buffer") : key;
  if (innerInput.length < BLOCK_BYTES + message.length) {
    innerInput = Buffer.alloc(BLOCK_BYTES + message.length);
  }
  for (let i = 0; i < blockKey.length; i++) {
    const keyByte = blockKey[i] as number;
    innerInput[i] = keyByte ^ INNER_PAD;
    outerInput[i] = keyByte ^ OUTER_PAD;
  }
  innerInput.fill(INNER_PAD, blockKey.length, BLOCK_BYTES);
  outerInput.fill(OUTER_PAD, blockKey.length, BLOCK_BYTES);
  innerInput.set(message, BLOCK_BYTES);
  const innerEnd = BLOCK_BYTES + message.length;
  outerInput.write(
    hash("sha256", innerInput.subarray(0, innerEnd), "binary"),
    BLOCK_BYTES,
    "latin1",
  );
  innerInput.fill(0, 0, innerEnd);
  out.write(hash("sha256", outerInput, "binary"), "latin1");
  outerInput.fill(0);
}
