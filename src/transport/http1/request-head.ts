import type { IncomingHttpHeaders } from "node:http";
import { HEADER_NAME, INVALID_HEADER_VALUE } from "./header-syntax.js";

/** A request head kmsd's HTTP/1.1 path serves itself. */
export interface RequestHead {
  readonly kind: "head";
  readonly method: string;
  /** The request target as sent (origin form: path and query). */
  readonly target: string;
  /** Lower-case names, as node's http server gives them. */
  readonly headers: IncomingHttpHeaders;
  readonly contentLength: number;
  /** False when the client asked to close the connection after this request. */
  readonly keepAlive: boolean;
  /** The client waits for "100 Continue" before sending its body (Expect: 100-continue). */
  readonly expectsContinue: boolean;
  /** Bytes the head took, its closing blank line included. */
  readonly length: number;
}

/**
 * What the start of a connection's unread bytes holds: a whole head kmsd
 * serves itself, not yet a whole head, or something left to node's http
 * server (which implements every corner of HTTP/1.1 and answers malformed
 * requests).
 */
export type ParsedHead = RequestHead | { readonly kind: "incomplete" } | { readonly kind: "other" };

const INCOMPLETE = { kind: "incomplete" } as const;
const OTHER = { kind: "other" } as const;

const HEAD_END = Buffer.from("\r\n\r\n");
// Origin-form targets of visible ASCII; methods whose answers carry a body.
const REQUEST_LINE = /^(GET|POST|PUT|PATCH|DELETE) (\/[!-~]*) HTTP\/1\.1$/;
// A Content-Length as node's parser takes it: spaces or tabs before the
// digits, only spaces after them (it answers 400 to a tab there).
const CONTENT_LENGTH = /^[ \t]*\d{1,15} *$/;
// Headers whose meaning kmsd's path does not implement (bodies in chunks,
// protocol switches): requests carrying them go to node.
const LEFT_TO_NODE = new Set(["transfer-encoding", "upgrade", "http2-settings"]);
/** More header lines than any client of kmsd sends; node's own limit is 2000. */
const MAX_HEADER_LINES = 100;

/**
 * Parses the request head at the start of `bytes`. Deliberately strict: only
 * the plain shape every HTTP client sends (CRLF line ends, no repeated
 * headers, a Content-Length body or none) is parsed here, so that kmsd and
 * node never read one request two ways; anything else is "other", for node.
 */
export function parseRequestHead(bytes: Buffer, maxHeaderBytes: number): ParsedHead {
  const end = bytes.indexOf(HEAD_END);
  if (end < 0) return bytes.length > maxHeaderBytes ? OTHER : INCOMPLETE;
  if (end > maxHeaderBytes) return OTHER;
  const text = bytes.toString("latin1", 0, end);
  let lineEnd = text.indexOf("\r\n");
  const requestLine = REQUEST_LINE.exec(lineEnd < 0 ? text : text.slice(0, lineEnd));
  if (requestLine === null) return OTHER;
  const headers: IncomingHttpHeaders = {};
  let contentLength = 0;
  let keepAlive = true;
  let expectsContinue = false;
  for (let count = 0; lineEnd >= 0; count++) {
    if (count === MAX_HEADER_LINES) return OTHER;
    const start = lineEnd + 2;
    lineEnd = text.indexOf("\r\n", start);
    const line = lineEnd < 0 ? text.slice(start) : text.slice(start, lineEnd);
    const colon = line.indexOf(":");
    const rawName = line.slice(0, colon);
    if (colon <= 0 || !HEADER_NAME.test(rawName)) return OTHER;
    const rawValue = line.slice(colon + 1);
    const value = trimSpaces(rawValue);
    if (INVALID_HEADER_VALUE.test(value)) return OTHER;
    const name = rawName.toLowerCase();
    // "__proto__" as a plain object's key would set its prototype.
    if (Object.hasOwn(headers, name) || name === "__proto__" || LEFT_TO_NODE.has(name)) {
      return OTHER;
    }
    if (name === "content-length") {
      if (!CONTENT_LENGTH.test(rawValue)) return OTHER;
      contentLength = Number(value);
    } else if (name === "expect") {
      // The only expectation HTTP/1.1 defines; node answers any other 417.
      if (value.toLowerCase() !== "100-continue") return OTHER;
      expectsContinue = true;
    } else if (name === "connection") {
      const options = value.toLowerCase().split(",");
      if (options.some((option) => option.trim() === "upgrade")) return OTHER;
      keepAlive = !options.some((option) => option.trim() === "close");
    }
    headers[name] = value;
  }
  // node answers a request without Host 400 (HTTP/1.1 requires one).
  if (headers.host === undefined) return OTHER;
  return {
    kind: "head",
    method: requestLine[1] as string,
    target: requestLine[2] as string,
    headers,
    contentLength,
    keepAlive,
    expectsContinue,
    length: end + HEAD_END.length,
  };
}

/** A header value without the spaces and tabs around it. */
function trimSpaces(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && isSpace(value.charCodeAt(start))) start++;
  while (end > start && isSpace(value.charCodeAt(end - 1))) end--;
  return start === 0 && end === value.length ? value : value.slice(start, end);
}

function isSpace(code: number): boolean {
  return code === 0x20 || code === 0x09;
}
