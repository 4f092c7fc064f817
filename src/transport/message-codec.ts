import type { IncomingHttpHeaders } from "node:http";
import {
  type DescField,
  type DescMessage,
  fromBinary,
  fromJson,
  getOption,
  type JsonObject,
  type JsonReadOptions,
  type JsonValue,
  type JsonWriteOptions,
  type Message,
  toBinary,
  toJsonString,
} from "@bufbuild/protobuf";
import { isFieldError } from "@bufbuild/protobuf/reflect";
import type { ConnectError } from "@connectrpc/connect";
import { huawei_error_code } from "../../gen/kms/v1/rules_pb.js";
import { isHuaweiErrorCode } from "../errors/huawei-codes.js";
import { kmsError } from "../errors/kms-error.js";
import { flatCodecFor } from "../proto/flat-codec.js";

/**
 * Request decoding shared by every transport kmsd implements itself (REST
 * and the RPC fast paths), with Huawei's codes for what can go wrong.
 */

/** Huawei's JSON: its field names, and every field present (as Huawei sends them). */
export const huaweiJsonOptions: Partial<JsonReadOptions & JsonWriteOptions> = {
  useProtoFieldName: true,
  alwaysEmitImplicit: true,
  ignoreUnknownFields: true,
};

/** A parsed JSON value as a request message; unknown fields are ignored. */
export function messageFromJson(schema: DescMessage, json: JsonValue): Message {
  if (isJsonObject(json)) {
    const flat = flatCodecFor(schema)?.fromJson(json);
    if (flat !== undefined) return flat;
  }
  try {
    return fromJson(schema, json, { ignoreUnknownFields: true });
  } catch (error) {
    throw jsonFieldError(error);
  }
}

/** JSON text as a request message. */
export function messageFromJsonText(schema: DescMessage, text: string, maxDepth: number): Message {
  return messageFromJson(schema, parseJsonObject(text, maxDepth));
}

/**
 * A request body as a JSON object: KMS.0202 when it is not JSON, KMS.0214
 * when not an object or nested deeper than `maxDepth`.
 */
export function parseJsonObject(text: string, maxDepth: number): JsonObject {
  if (jsonDepthExceeds(text, maxDepth)) {
    throw kmsError(
      "KMS.0214",
      `the request body nests objects or arrays deeper than ${maxDepth} levels`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw kmsError("KMS.0202", "the request body is not valid JSON");
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw kmsError("KMS.0214", "the request body must be a JSON object");
  }
  return json as JsonObject;
}

export function messageFromBinary(schema: DescMessage, bytes: Uint8Array): Message {
  const flat = flatCodecFor(schema)?.decode(bytes);
  if (flat !== undefined) return flat;
  try {
    return fromBinary(schema, bytes);
  } catch {
    throw kmsError("KMS.0214", `the request is not a valid ${schema.typeName} message`);
  }
}

/** A response message as Huawei's JSON text (see huaweiJsonOptions). */
export function messageToJson(schema: DescMessage, message: Message): string {
  return flatCodecFor(schema)?.toJson(message) ?? toJsonString(schema, message, huaweiJsonOptions);
}

function isJsonObject(json: JsonValue): json is JsonObject {
  return typeof json === "object" && json !== null && !Array.isArray(json);
}

/** A response message's bytes (the flat codec when it takes the message, else protobuf-es). */
export function messageToBinary(schema: DescMessage, message: Message): Uint8Array {
  return flatCodecFor(schema)?.encode(message) ?? toBinary(schema, message);
}

/** A JSON value of the wrong type answers its field's Huawei code. */
function jsonFieldError(error: unknown): ConnectError {
  const cause = error instanceof Error ? error.cause : undefined;
  if (!isFieldError(cause)) return kmsError("KMS.0214", "the request body has an invalid shape");
  const field = cause.field();
  const code = field.kind === "field" ? getOption(field as DescField, huawei_error_code) : "";
  return kmsError(
    isHuaweiErrorCode(code) ? code : "KMS.0214",
    `${field.name} has an invalid value: ${cause.message}`,
  );
}

/** Node's request headers as a Headers object (pseudo-headers left out). */
export function headersFromNode(nodeHeaders: IncomingHttpHeaders): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(nodeHeaders)) {
    if (name.startsWith(":") || value === undefined) continue;
    if (Array.isArray(value)) for (const item of value) headers.append(name, item);
    else headers.set(name, value);
  }
  return headers;
}

/**
 * Whether JSON text nests objects and arrays deeper than `maxDepth`, found
 * with one pass over the text before JSON.parse builds anything (a deeply
 * nested body would otherwise cost memory and stack before being refused).
 */
export function jsonDepthExceeds(text: string, maxDepth: number): boolean {
  // Nesting needs an opening bracket per level: text with no more of them
  // than the limit cannot exceed it. Counting them is a native search,
  // where the pass below is a JavaScript loop over every character (5 µs
  // for a 4 KiB body, three times what JSON.parse takes for it).
  if (openingBracketsAtMost(text, maxDepth)) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > maxDepth) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/** Whether the text holds at most `limit` "{" and "[" characters, strings included. */
function openingBracketsAtMost(text: string, limit: number): boolean {
  let count = 0;
  for (const bracket of OPENING_BRACKETS) {
    for (let at = text.indexOf(bracket); at >= 0; at = text.indexOf(bracket, at + 1)) {
      if (++count > limit) return false;
    }
  }
  return true;
}

const OPENING_BRACKETS = ["{", "["] as const;
