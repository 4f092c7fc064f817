import type { IncomingHttpHeaders } from "node:http";

/** A request header block that is malformed (RFC 9113 §8.1.1): the stream is reset. */
export class MalformedHeadersError extends Error {}

const REQUEST_PSEUDO_HEADERS = new Set([":method", ":scheme", ":authority", ":path"]);

// Connection-specific fields have no place in HTTP/2 (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
]);

// Fields that hold one value: a repeat is dropped, the first one counts (as node's http2 does).
const SINGLE_VALUE = new Set([
  "authorization",
  "content-encoding",
  "content-length",
  "content-type",
  "host",
  "user-agent",
  "x-auth-token",
]);

// A field name: lowercase token characters only (RFC 9113 §8.2.1).
const FIELD_NAME = /^[a-z0-9!#$%&'*+\-.^_`|~]+$/;
/** What an HTTP/2 field value may not hold (RFC 9113 §8.2.1): CR, LF, NUL. */
export const FORBIDDEN_IN_VALUE = /[\r\n\0]/;

/**
 * A request's decoded fields as node's http2 gives headers: pseudo-headers
 * included, names lowercase, repeats joined (cookie with "; ", set-cookie
 * as a list, the rest with ", "). Throws MalformedHeadersError for what
 * RFC 9113 calls malformed.
 */
export function requestHeaders(fields: readonly string[]): IncomingHttpHeaders {
  const headers: IncomingHttpHeaders = {};
  let regular = false;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i] as string;
    const value = fields[i + 1] as string;
    if (FORBIDDEN_IN_VALUE.test(value))
      throw new MalformedHeadersError(`field ${name} holds CR, LF or NUL`);
    if (name.startsWith(":")) {
      if (regular) throw new MalformedHeadersError(`${name} follows a regular field`);
      if (!REQUEST_PSEUDO_HEADERS.has(name)) throw new MalformedHeadersError(`unknown ${name}`);
      if (headers[name] !== undefined) throw new MalformedHeadersError(`${name} repeated`);
      headers[name] = value;
      continue;
    }
    regular = true;
    if (!FIELD_NAME.test(name))
      throw new MalformedHeadersError(`invalid field name ${JSON.stringify(name)}`);
    if (CONNECTION_SPECIFIC.has(name))
      throw new MalformedHeadersError(`connection-specific field ${name}`);
    if (name === "te" && value !== "trailers")
      throw new MalformedHeadersError("te other than trailers");
    const previous = headers[name];
    if (previous === undefined) {
      headers[name] = name === "set-cookie" ? [value] : value;
    } else if (name === "set-cookie") {
      (previous as string[]).push(value);
    } else if (!SINGLE_VALUE.has(name)) {
      headers[name] = `${previous}${name === "cookie" ? "; " : ", "}${value}`;
    }
  }
  const method = headers[":method"];
  if (method === undefined || headers[":scheme"] === undefined || !headers[":path"]) {
    throw new MalformedHeadersError(":method, :scheme or :path is missing");
  }
  if (method === "CONNECT") throw new MalformedHeadersError("CONNECT is not served");
  return headers;
}
