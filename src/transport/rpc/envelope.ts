/**
 * gRPC's length-prefixed message framing: a flags byte (bit 0: compressed)
 * and a u32be length, then the message.
 */
export const ENVELOPE_HEADER = 5;

export function envelope(message: Uint8Array): Buffer {
  const framed = Buffer.allocUnsafe(ENVELOPE_HEADER + message.length);
  framed[0] = 0;
  framed.writeUInt32BE(message.length, 1);
  framed.set(message, ENVELOPE_HEADER);
  return framed;
}

/**
 * The one uncompressed message a unary request body must hold; undefined
 * when the body is anything else (no message, several, a compressed one).
 */
export function singleMessage(body: Buffer): Buffer | undefined {
  if (body.length < ENVELOPE_HEADER || body[0] !== 0) return undefined;
  const length = body.readUInt32BE(1);
  return body.length === ENVELOPE_HEADER + length ? body.subarray(ENVELOPE_HEADER) : undefined;
}
