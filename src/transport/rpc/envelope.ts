import type { DescMessage, Message } from "@bufbuild/protobuf";
import { flatCodecFor } from "../../proto/flat-codec.js";
import { messageToBinary } from "../message-codec.js";

/**
 * gRPC's length-prefixed message framing: a flags byte (bit 0: compressed)
 * and a u32be length, then the message.
 */
export const ENVELOPE_HEADER = 5;

/** A response message, framed: encoded straight behind its header where the flat codec can. */
export function envelopedMessage(schema: DescMessage, message: Message): Buffer {
  const framed = flatCodecFor(schema)?.encode(message, ENVELOPE_HEADER);
  if (framed === undefined) return envelope(messageToBinary(schema, message));
  writeEnvelopeHeader(framed, framed.length - ENVELOPE_HEADER);
  return framed;
}

export function envelope(message: Uint8Array): Buffer {
  const framed = Buffer.allocUnsafe(ENVELOPE_HEADER + message.length);
  writeEnvelopeHeader(framed, message.length);
  framed.set(message, ENVELOPE_HEADER);
  return framed;
}

function writeEnvelopeHeader(framed: Buffer, messageLength: number): void {
  framed[0] = 0;
  framed.writeUInt32BE(messageLength, 1);
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
