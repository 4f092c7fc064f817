import { isUtf8 } from "node:buffer";
import {
  type DescField,
  type DescMessage,
  type JsonObject,
  type Message,
  ScalarType,
} from "@bufbuild/protobuf";
import { Edition, FeatureSet_FieldPresence } from "@bufbuild/protobuf/wkt";
import { encoded_binary } from "../../gen/kms/v1/rules_pb.js";
import { optionOf } from "./options.js";

/**
 * The protobuf binary format for "flat" proto3 messages: fields that are
 * strings, bools, uint32s (implicit or `optional`) and map<string, string>,
 * which is what EncryptData and DecryptData and most of kmsd's requests and
 * responses are. protobuf-es goes through its reflection API for every
 * message (several Maps and a writer's chunk list per call), a tenth of a
 * cached EncryptData's CPU time; this reads and writes such messages
 * directly.
 *
 * It only takes the plain case and says so by returning undefined: a
 * message with unknown fields, an unexpected wire type, a value out of
 * range, invalid UTF-8 or anything else unusual is left to protobuf-es, so
 * that its behaviour (and errors) stay the reference. test/proto checks the
 * two agree, byte for byte and field for field.
 */
export interface FlatCodec {
  /** The message, or undefined when protobuf-es must decode these bytes. */
  decode(bytes: Uint8Array): Message | undefined;
  /**
   * The message's bytes, or undefined when protobuf-es must encode it.
   * `headroom` bytes are left unwritten in front of them, for a framing
   * header the caller fills in (gRPC's envelope) without copying the message.
   */
  encode(message: Message, headroom?: number): Buffer | undefined;
  /**
   * The message a parsed JSON object stands for (field names proto or
   * JSON-style, unknown keys ignored), or undefined when protobuf-es must
   * read it.
   */
  fromJson(json: JsonObject): Message | undefined;
  /**
   * The message as JSON text with proto field names and every implicit
   * field present (Huawei's JSON), or undefined when protobuf-es must write it.
   */
  toJson(message: Message): string | undefined;
}

type FlatKind = "string" | "bool" | "uint32" | "string-map";

interface FlatField {
  readonly number: number;
  readonly localName: string;
  /** The proto field name (snake_case). */
  readonly name: string;
  readonly kind: FlatKind;
  /** Explicit presence (proto3 `optional`): absent unless set, written whenever set. */
  readonly explicit: boolean;
  /** The field's JSON key as JSON text (its proto name, quoted). */
  readonly jsonKey: string;
  /** Marked `(kms.v1.encoded_binary)`: base64 or hex text kmsd made, written without an escape scan. */
  readonly encodedBinary: boolean;
}

const WIRE_VARINT = 0;
const WIRE_LEN = 2;

const codecs = new WeakMap<DescMessage, FlatCodec | null>();

/** The codec for a message type, or undefined when the type is not flat. */
export function flatCodecFor(schema: DescMessage): FlatCodec | undefined {
  let codec = codecs.get(schema);
  if (codec === undefined) {
    codec = createFlatCodec(schema) ?? null;
    codecs.set(schema, codec);
  }
  return codec ?? undefined;
}

function flatKind(field: DescField): FlatKind | undefined {
  if (field.fieldKind === "scalar") {
    if (field.scalar === ScalarType.STRING) return "string";
    if (field.scalar === ScalarType.BOOL) return "bool";
    if (field.scalar === ScalarType.UINT32) return "uint32";
    return undefined;
  }
  if (
    field.fieldKind === "map" &&
    field.mapKey === ScalarType.STRING &&
    field.mapKind === "scalar" &&
    field.scalar === ScalarType.STRING
  ) {
    return "string-map";
  }
  return undefined;
}

function createFlatCodec(schema: DescMessage): FlatCodec | undefined {
  if (schema.file.edition !== Edition.EDITION_PROTO3 || schema.oneofs.length > 0) return undefined;
  const fields: FlatField[] = [];
  // JSON names a field by its proto name or its JSON name.
  const byJsonKey = new Map<string, FlatField>();
  for (const field of schema.fields) {
    const kind = flatKind(field);
    if (kind === undefined || field.number > 0x0fffffff) return undefined;
    const flat: FlatField = {
      number: field.number,
      localName: field.localName,
      name: field.name,
      kind,
      explicit: field.presence === FeatureSet_FieldPresence.EXPLICIT,
      jsonKey: JSON.stringify(field.name),
      encodedBinary: kind === "string" && optionOf(field, encoded_binary),
    };
    fields.push(flat);
    byJsonKey.set(field.name, flat).set(field.jsonName, flat);
  }
  // protobuf-es writes fields in field-number order.
  fields.sort((a, b) => a.number - b.number);
  const byNumber = new Map(fields.map((field) => [field.number, field]));
  const hasMap = fields.some((field) => field.kind === "string-map");
  const typeName = schema.typeName;

  const zeroMessage = (): Record<string, unknown> => {
    const message: Record<string, unknown> = { $typeName: typeName };
    for (const field of fields) {
      if (field.explicit) continue;
      message[field.localName] = field.kind === "string-map" ? {} : zeroOf(field.kind);
    }
    return message;
  };

  return {
    decode(bytes) {
      const message = zeroMessage();
      const reader = new Reader(bytes);
      while (reader.more()) {
        const tag = reader.varint32();
        if (tag === undefined) return undefined;
        const field = byNumber.get(tag >>> 3);
        if (field === undefined) return undefined;
        const wireType = tag & 7;
        if (field.kind === "bool" || field.kind === "uint32") {
          if (wireType !== WIRE_VARINT) return undefined;
          const value = reader.varint32();
          if (value === undefined) return undefined;
          if (field.kind === "bool") {
            if (value > 1) return undefined;
            message[field.localName] = value === 1;
          } else {
            message[field.localName] = value;
          }
          continue;
        }
        if (wireType !== WIRE_LEN) return undefined;
        if (field.kind === "string") {
          const value = reader.string();
          if (value === undefined) return undefined;
          message[field.localName] = value;
          continue;
        }
        const entry = reader.mapEntry();
        // "__proto__" as a plain object's key would set its prototype.
        if (entry === undefined || entry[0] === "__proto__") return undefined;
        (message[field.localName] as Record<string, string>)[entry[0]] = entry[1];
      }
      return message as Message;
    },

    encode(message, headroom = 0) {
      if (hasMap || message.$typeName !== typeName) return undefined;
      const values = message as unknown as Record<string, unknown>;
      if (values.$unknown !== undefined) return undefined;
      let size = 0;
      for (const field of fields) {
        const value = values[field.localName];
        if (!isWritten(field, value)) continue;
        size += varintSize(field.number << 3);
        if (field.kind === "string" && typeof value === "string") {
          const length = Buffer.byteLength(value, "utf8");
          size += varintSize(length) + length;
        } else if (field.kind === "bool" && typeof value === "boolean") {
          size += 1;
        } else if (field.kind === "uint32" && typeof value === "number" && isUint32(value)) {
          size += varintSize(value);
        } else {
          return undefined;
        }
      }
      const out = Buffer.allocUnsafe(headroom + size);
      let offset = headroom;
      for (const field of fields) {
        const value = values[field.localName];
        if (!isWritten(field, value)) continue;
        // The first pass checked every value against its field's kind.
        if (field.kind === "string") {
          const text = value as string;
          offset = writeVarint(out, offset, (field.number << 3) | WIRE_LEN);
          offset = writeVarint(out, offset, Buffer.byteLength(text, "utf8"));
          offset += out.write(text, offset, "utf8");
        } else {
          offset = writeVarint(out, offset, (field.number << 3) | WIRE_VARINT);
          offset = writeVarint(
            out,
            offset,
            field.kind === "bool" ? Number(value === true) : (value as number),
          );
        }
      }
      return out;
    },

    fromJson(json) {
      const message = zeroMessage();
      const seen = new Set<FlatField>();
      for (const key in json) {
        const field = byJsonKey.get(key);
        // Unknown keys are ignored, as kmsd asks protobuf-es to.
        if (field === undefined) continue;
        // A field given twice (by both its names) is protobuf-es's error to report.
        if (seen.has(field)) return undefined;
        seen.add(field);
        const value = json[key];
        if (!isJsonOfKind(field.kind, value)) return undefined;
        message[field.localName] = field.kind === "string-map" ? { ...(value as object) } : value;
      }
      return message as Message;
    },

    toJson(message) {
      if (hasMap || message.$typeName !== typeName) return undefined;
      const values = message as unknown as Record<string, unknown>;
      let text = "";
      for (const field of fields) {
        const value = values[field.localName];
        if (value === undefined) {
          if (field.explicit) continue;
          return undefined;
        }
        if (!isJsonOfKind(field.kind, value)) return undefined;
        const json =
          typeof value === "string" &&
          (field.encodedBinary ? isPlainJsonText(value) : isVerbatimLongJsonText(value))
            ? `"${value}"`
            : JSON.stringify(value);
        text += `${text === "" ? "{" : ","}${field.jsonKey}:${json}`;
      }
      return text === "" ? "{}" : `${text}}`;
    },
  };
}

/**
 * Whether an encoded-binary field's text can go into JSON between quotes
 * as it is. Base64 and hex never hold a quote or a backslash; checking for
 * those two (a native search, ~0.05 µs for 5 KB) keeps a wrongly marked
 * field from ever ending its string early or escaping what follows.
 */
function isPlainJsonText(value: string): boolean {
  return !value.includes('"') && !value.includes("\\");
}

/** What JSON.stringify escapes in ASCII text: the controls U+0000–U+001F, the quote and the backslash. */
const JSON_ESCAPED_ASCII: readonly string[] = [
  ...Array.from({ length: 0x20 }, (_, code) => String.fromCharCode(code)),
  '"',
  "\\",
];

/** Below this length JSON.stringify's own scan costs less than the searches. */
const LONG_TEXT_CHARS = 256;

/**
 * Whether a long text goes into JSON between quotes exactly as it is, as
 * JSON.stringify would write it: ASCII (so no lone surrogate to escape)
 * without any character JSON escapes. One native search per such
 * character instead of JSON.stringify's scan: for DecryptData's 4 KB
 * plain_text ~0.9 µs against ~4 µs (docs/benchmarks.md). A text that
 * needs escaping pays both, up to ~1 µs more.
 */
function isVerbatimLongJsonText(value: string): boolean {
  if (value.length < LONG_TEXT_CHARS || Buffer.byteLength(value, "utf8") !== value.length) {
    return false;
  }
  for (const character of JSON_ESCAPED_ASCII) if (value.includes(character)) return false;
  return true;
}

/**
 * Whether a JSON value is one protobuf-es reads as is for the kind: a
 * string, a boolean, an integer in uint32's range, an object of strings
 * (without "__proto__", which a plain object would take as its prototype).
 * Anything else (null, numeric strings, ...) is left to protobuf-es.
 */
function isJsonOfKind(kind: FlatKind, value: unknown): boolean {
  switch (kind) {
    case "string":
      return typeof value === "string";
    case "bool":
      return typeof value === "boolean";
    case "uint32":
      return typeof value === "number" && isUint32(value);
    case "string-map":
      return (
        typeof value === "object" &&
        value !== null &&
        !Array.isArray(value) &&
        !Object.hasOwn(value, "__proto__") &&
        Object.values(value).every((item) => typeof item === "string")
      );
  }
}

function zeroOf(kind: Exclude<FlatKind, "string-map">): string | boolean | number {
  return kind === "string" ? "" : kind === "bool" ? false : 0;
}

/** Implicit fields are written unless zero; explicit ones whenever set. */
function isWritten(field: FlatField, value: unknown): boolean {
  if (value === undefined) return false;
  return field.explicit || (value !== "" && value !== false && value !== 0);
}

function isUint32(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= 0xffffffff;
}

function varintSize(value: number): number {
  let size = 1;
  for (let rest = value >>> 7; rest !== 0; rest >>>= 7) size++;
  return size;
}

function writeVarint(out: Buffer, offset: number, value: number): number {
  let at = offset;
  let rest = value >>> 0;
  while (rest > 0x7f) {
    out[at++] = (rest & 0x7f) | 0x80;
    rest >>>= 7;
  }
  out[at++] = rest;
  return at;
}

/** Reads the wire format; every method returns undefined on anything it does not take. */
class Reader {
  #offset = 0;
  readonly #bytes: Buffer;

  constructor(bytes: Uint8Array) {
    this.#bytes = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  more(): boolean {
    return this.#offset < this.#bytes.length;
  }

  /** A varint of at most 5 bytes holding a uint32 (what uint32 fields, tags and lengths use). */
  varint32(): number | undefined {
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const byte = this.#bytes[this.#offset++];
      if (byte === undefined) return undefined;
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value <= 0xffffffff ? value : undefined;
    }
    return undefined;
  }

  /** A length-delimited field's bytes. */
  chunk(): Buffer | undefined {
    const length = this.varint32();
    if (length === undefined || this.#offset + length > this.#bytes.length) return undefined;
    const start = this.#offset;
    this.#offset += length;
    return this.#bytes.subarray(start, this.#offset);
  }

  string(): string | undefined {
    const bytes = this.chunk();
    return bytes !== undefined && isUtf8(bytes) ? bytes.toString("utf8") : undefined;
  }

  /** A map<string, string> entry: key field 1, value field 2, each at most once, in order. */
  mapEntry(): [string, string] | undefined {
    const bytes = this.chunk();
    if (bytes === undefined) return undefined;
    const entry = new Reader(bytes);
    let key = "";
    let value = "";
    let last = 0;
    while (entry.more()) {
      const tag = entry.varint32();
      const number = tag === undefined ? 0 : tag >>> 3;
      if (tag === undefined || (tag & 7) !== WIRE_LEN || number <= last || number > 2) {
        return undefined;
      }
      last = number;
      const text = entry.string();
      if (text === undefined) return undefined;
      if (number === 1) key = text;
      else value = text;
    }
    return [key, value];
  }
}
