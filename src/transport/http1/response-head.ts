import { type OutgoingHttpHeaders, STATUS_CODES } from "node:http";
import { HEADER_NAME, INVALID_HEADER_VALUE } from "./header-syntax.js";

function headerLine(name: string, value: string): string {
  if (INVALID_HEADER_VALUE.test(value)) throw new TypeError(`invalid character in header ${name}`);
  return `${name}: ${value}\r\n`;
}

let cachedDate = "";
let cachedDateSecond = -1;

/** The Date header's value, made at most once a second (as node's http server does). */
function httpDate(): string {
  const second = Math.floor(Date.now() / 1000);
  if (second !== cachedDateSecond) {
    cachedDateSecond = second;
    cachedDate = new Date(second * 1000).toUTCString();
  }
  return cachedDate;
}

/**
 * An HTTP/1.1 response head: the status line, the given headers, then the
 * ones every answer carries (Content-Length, Date, and whether the
 * connection stays open), as node's http server writes them. A header name
 * or value that could split the head is refused, as node refuses it.
 */
export function responseHead(
  status: number,
  headers: OutgoingHttpHeaders,
  contentLength: number,
  keepAliveSeconds: number | undefined,
): string {
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Unknown"}\r\n`;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || name === "content-length" || name === "connection") continue;
    if (!HEADER_NAME.test(name)) throw new TypeError(`invalid header name ${JSON.stringify(name)}`);
    // One line per value of a list; no array is made for the usual single value.
    if (Array.isArray(value)) for (const one of value) head += headerLine(name, one);
    else head += headerLine(name, String(value));
  }
  head += `content-length: ${contentLength}\r\ndate: ${httpDate()}\r\n`;
  head +=
    keepAliveSeconds === undefined
      ? "connection: close\r\n\r\n"
      : `connection: keep-alive\r\nkeep-alive: timeout=${keepAliveSeconds}\r\n\r\n`;
  return head;
}
