/**
 * HTTP/1.1 header syntax, for the heads kmsd reads and the ones it writes:
 * the same characters node's http server accepts and refuses
 * (ERR_INVALID_HTTP_TOKEN, ERR_INVALID_CHAR).
 */

/** A header name: a token (RFC 9110 §5.6.2). */
export const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** A character no header value may hold: values are visible ASCII, spaces, tabs and obs-text (RFC 9110 §5.5), no CR, LF or other controls. */
export const INVALID_HEADER_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
