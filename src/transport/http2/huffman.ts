import { HUFFMAN_CODES } from "./huffman-codes.js";

/**
 * Decodes HPACK's Huffman-coded strings (RFC 7541 §5.2) four bits at a
 * time: a state per inner node of the code's tree, and for each state and
 * nibble, where the four bits lead and which symbol they complete. No code
 * is shorter than five bits, so a nibble completes at most one symbol.
 */
export class HuffmanError extends Error {}

const EOS = 256;
const EMITS = 1 << 16;
const FAILS = 1 << 17;

interface Tree {
  /** Children of each inner node: [zero, one]; a leaf is -(symbol + 1). */
  readonly children: number[][];
}

function buildTree(): Tree {
  const children: number[][] = [[0, 0]];
  HUFFMAN_CODES.forEach(([code, bits], symbol) => {
    let node = 0;
    for (let bit = bits - 1; bit >= 0; bit--) {
      const side = (code >>> bit) & 1;
      const at = children[node] as number[];
      if (bit === 0) {
        at[side] = -(symbol + 1);
      } else {
        if (at[side] === 0) {
          at[side] = children.length;
          children.push([0, 0]);
        }
        node = at[side] as number;
      }
    }
  });
  return { children };
}

/**
 * The transition table, and which states may end a string: those reached
 * from the root by up to seven 1 bits, the prefix of EOS that RFC 7541
 * allows as padding.
 */
function buildTable(): { transitions: Uint32Array; endsWell: Uint8Array } {
  const { children } = buildTree();
  const transitions = new Uint32Array(children.length * 16);
  for (let state = 0; state < children.length; state++) {
    for (let nibble = 0; nibble < 16; nibble++) {
      let node = state;
      let entry = 0;
      for (let bit = 3; bit >= 0; bit--) {
        const next = (children[node] as number[])[(nibble >>> bit) & 1] as number;
        if (next < 0) {
          const symbol = -next - 1;
          if (symbol === EOS) entry |= FAILS;
          else entry |= EMITS | (symbol << 8);
          node = 0;
        } else {
          node = next;
        }
      }
      transitions[state * 16 + nibble] = entry | node;
    }
  }
  const endsWell = new Uint8Array(children.length);
  let node = 0;
  endsWell[0] = 1;
  for (let ones = 1; ones <= 7; ones++) {
    node = (children[node] as number[])[1] as number;
    endsWell[node] = 1;
  }
  return { transitions, endsWell };
}

const { transitions, endsWell } = buildTable();
const scratch = Buffer.allocUnsafe(16384);

/** The Huffman-coded bytes `[start, end)` of `input`, decoded as a latin1 string (header values are bytes). */
export function decodeHuffman(input: Uint8Array, start: number, end: number): string {
  // Eight bits hold at most 8/5 symbols: the output never exceeds twice the input.
  const out = (end - start) * 2 <= scratch.length ? scratch : Buffer.allocUnsafe((end - start) * 2);
  let length = 0;
  let state = 0;
  for (let i = start; i < end; i++) {
    const byte = input[i] as number;
    let entry = transitions[state * 16 + (byte >>> 4)] as number;
    if (entry & FAILS) throw new HuffmanError("a Huffman-coded string holds EOS");
    if (entry & EMITS) out[length++] = (entry >>> 8) & 0xff;
    state = entry & 0xff;
    entry = transitions[state * 16 + (byte & 0xf)] as number;
    if (entry & FAILS) throw new HuffmanError("a Huffman-coded string holds EOS");
    if (entry & EMITS) out[length++] = (entry >>> 8) & 0xff;
    state = entry & 0xff;
  }
  if (endsWell[state] !== 1) throw new HuffmanError("a Huffman-coded string has bad padding");
  return out.toString("latin1", 0, length);
}
