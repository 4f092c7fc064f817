/**
 * HPACK (RFC 7541): the request side decodes header blocks against the
 * connection's dynamic table; the response side writes every field as a
 * literal that is never added to a table, so answers need no encoder state.
 */
import { decodeHuffman, HuffmanError } from "./huffman.js";

/** RFC 7541 Appendix A. */
const STATIC_TABLE: readonly (readonly [name: string, value: string])[] = [
  [":authority", ""],
  [":method", "GET"],
  [":method", "POST"],
  [":path", "/"],
  [":path", "/index.html"],
  [":scheme", "http"],
  [":scheme", "https"],
  [":status", "200"],
  [":status", "204"],
  [":status", "206"],
  [":status", "304"],
  [":status", "400"],
  [":status", "404"],
  [":status", "500"],
  ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"],
  ["accept-language", ""],
  ["accept-ranges", ""],
  ["accept", ""],
  ["access-control-allow-origin", ""],
  ["age", ""],
  ["allow", ""],
  ["authorization", ""],
  ["cache-control", ""],
  ["content-disposition", ""],
  ["content-encoding", ""],
  ["content-language", ""],
  ["content-length", ""],
  ["content-location", ""],
  ["content-range", ""],
  ["content-type", ""],
  ["cookie", ""],
  ["date", ""],
  ["etag", ""],
  ["expect", ""],
  ["expires", ""],
  ["from", ""],
  ["host", ""],
  ["if-match", ""],
  ["if-modified-since", ""],
  ["if-none-match", ""],
  ["if-range", ""],
  ["if-unmodified-since", ""],
  ["last-modified", ""],
  ["link", ""],
  ["location", ""],
  ["max-forwards", ""],
  ["proxy-authenticate", ""],
  ["proxy-authorization", ""],
  ["range", ""],
  ["referer", ""],
  ["refresh", ""],
  ["retry-after", ""],
  ["server", ""],
  ["set-cookie", ""],
  ["strict-transport-security", ""],
  ["transfer-encoding", ""],
  ["user-agent", ""],
  ["vary", ""],
  ["via", ""],
  ["www-authenticate", ""],
];

/** A field's size as tables count it (RFC 7541 §4.1). */
const ENTRY_OVERHEAD = 32;

/** A header block that does not decode: the connection's table can no longer be trusted (COMPRESSION_ERROR). */
export class HpackError extends Error {
  constructor(message: string) {
    super(`header block: ${message}`);
    this.name = "HpackError";
  }
}

/** A decoded header block: its fields in order, as name, value, name, value... */
export interface HeaderFields {
  readonly fields: string[];
  /** Their size as SETTINGS_MAX_HEADER_LIST_SIZE counts it. */
  readonly listSize: number;
}

/** One connection's decoding state: its dynamic table (RFC 7541 §2.3.2). */
export class HeaderDecoder {
  /** Newest first: index 62 is the first entry. */
  private readonly names: string[] = [];
  private readonly values: string[] = [];
  private size = 0;
  private maxSize: number;

  /** `maxTableSize`: SETTINGS_HEADER_TABLE_SIZE, the largest table the encoder may ask for. */
  constructor(private readonly maxTableSize: number) {
    this.maxSize = maxTableSize;
  }

  decode(block: Buffer): HeaderFields {
    const fields: string[] = [];
    let listSize = 0;
    let at = 0;
    const end = block.length;
    const integer = (prefixBits: number): number => {
      if (at >= end) throw new HpackError("it ends inside an integer");
      const mask = (1 << prefixBits) - 1;
      let value = (block[at++] as number) & mask;
      if (value < mask) return value;
      for (let shift = 0; ; shift += 7) {
        if (at >= end) throw new HpackError("it ends inside an integer");
        // Nothing valid here needs more than 2^28.
        if (shift > 21) throw new HpackError("an integer is too large");
        const byte = block[at++] as number;
        value += (byte & 0x7f) * 2 ** shift;
        if ((byte & 0x80) === 0) return value;
      }
    };
    const string = (): string => {
      if (at >= end) throw new HpackError("it ends before a string");
      const huffman = ((block[at] as number) & 0x80) !== 0;
      const length = integer(7);
      if (length > end - at) throw new HpackError("a string runs past its end");
      const start = at;
      at += length;
      if (!huffman) return block.toString("latin1", start, at);
      try {
        return decodeHuffman(block, start, at);
      } catch (error) {
        if (error instanceof HuffmanError) throw new HpackError(error.message);
        throw error;
      }
    };
    let sawField = false;
    while (at < end) {
      const first = block[at] as number;
      let name: string;
      let value: string;
      if (first & 0x80) {
        [name, value] = this.entry(integer(7));
      } else if ((first & 0xe0) === 0x20) {
        // A table size update may only open a block (RFC 7541 §4.2).
        if (sawField) throw new HpackError("a table size update follows a field");
        const size = integer(5);
        if (size > this.maxTableSize) throw new HpackError("a table size update exceeds the limit");
        this.maxSize = size;
        this.evictTo(size);
        continue;
      } else {
        const indexed = first & 0x40 ? integer(6) : integer(4);
        name = indexed === 0 ? string() : (this.entry(indexed)[0] as string);
        value = string();
        if (first & 0x40) this.add(name, value);
      }
      sawField = true;
      fields.push(name, value);
      listSize += name.length + value.length + ENTRY_OVERHEAD;
    }
    return { fields, listSize };
  }

  private entry(index: number): readonly [string, string] {
    if (index === 0) throw new HpackError("index 0");
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1] as readonly [string, string];
    const at = index - STATIC_TABLE.length - 1;
    if (at >= this.names.length) throw new HpackError(`index ${index} is past the table`);
    return [this.names[at] as string, this.values[at] as string];
  }

  private add(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    if (size > this.maxSize) {
      // An entry larger than the table empties it and is not kept (§4.4).
      this.evictTo(0);
      return;
    }
    this.evictTo(this.maxSize - size);
    this.names.unshift(name);
    this.values.unshift(value);
    this.size += size;
  }

  private evictTo(limit: number): void {
    while (this.size > limit) {
      const name = this.names.pop() as string;
      const value = this.values.pop() as string;
      this.size -= name.length + value.length + ENTRY_OVERHEAD;
    }
  }
}

/** Static-table names a response may use: the index of each (RFC 7541 Appendix A). */
const STATIC_NAME_INDEX = new Map<string, number>();
STATIC_TABLE.forEach(([name], i) => {
  if (!STATIC_NAME_INDEX.has(name)) STATIC_NAME_INDEX.set(name, i + 1);
});
const STATUS_200 = 0x88;

/** Bytes a field needs at most as a literal: a prefix byte, two lengths of up to 5 bytes, the texts. */
function literalBound(name: string, value: string): number {
  return 11 + name.length + value.length;
}

/** The most bytes `encodeHeaderBlock` writes for `fields`. */
export function headerBlockBound(fields: readonly string[]): number {
  let bound = 0;
  for (let i = 0; i < fields.length; i += 2) {
    bound += literalBound(fields[i] as string, fields[i + 1] as string);
  }
  return bound;
}

/**
 * Writes `fields` (name, value, ...; names lowercase) into `out` at `at` as
 * literals never added to a table; returns the offset after them. Texts are
 * written as latin1, as node writes header values, and must not hold CR, LF
 * or NUL (checked by the caller, see header-fields.ts).
 */
export function encodeHeaderBlock(fields: readonly string[], out: Buffer, at: number): number {
  let offset = at;
  const integer = (value: number, prefixBits: number, flags: number) => {
    const max = (1 << prefixBits) - 1;
    if (value < max) {
      out[offset++] = flags | value;
      return;
    }
    out[offset++] = flags | max;
    let rest = value - max;
    while (rest >= 0x80) {
      out[offset++] = (rest & 0x7f) | 0x80;
      rest >>>= 7;
    }
    out[offset++] = rest;
  };
  const string = (text: string) => {
    integer(text.length, 7, 0);
    offset += out.write(text, offset, "latin1");
  };
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i] as string;
    const value = fields[i + 1] as string;
    if (name === ":status" && value === "200") {
      out[offset++] = STATUS_200;
      continue;
    }
    const index = STATIC_NAME_INDEX.get(name);
    if (index === undefined) {
      out[offset++] = 0x00;
      string(name);
    } else {
      // Literal without indexing, indexed name (RFC 7541 §6.2.2).
      integer(index, 4, 0x00);
    }
    string(value);
  }
  return offset;
}
