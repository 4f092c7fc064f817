import { createHash, createHmac, timingSafeEqual } from "node:crypto";

/**
 * Huawei's SDK-HMAC-SHA256 request signature, as the Huawei SDKs compute it
 * (the Node SDK's auth/AKSKSigner.js is the reference):
 *
 *   CanonicalRequest = METHOD \n canonical URI \n canonical query \n
 *                      canonical headers \n signed header names \n payload hash
 *   StringToSign     = "SDK-HMAC-SHA256" \n X-Sdk-Date \n hex(sha256(CanonicalRequest))
 *   Signature        = hex(HMAC-SHA256(secret key, StringToSign))
 *
 * Pure functions: the verifier (src/auth/request-authenticator.ts) supplies
 * the request as received.
 */
export const ALGORITHM = "SDK-HMAC-SHA256";
export const EMPTY_BODY_SHA256 = createHash("sha256").digest("hex");

export interface SignedRequestParts {
  readonly method: string;
  /** The path exactly as sent (still percent-encoded), without the query. */
  readonly rawPath: string;
  /** The query exactly as sent, without "?" ("" when none). */
  readonly rawQuery: string;
  /** Header values by lower-case name. */
  readonly header: (name: string) => string | undefined;
  /** Lower-case names the client signed, in the order it listed them. */
  readonly signedHeaders: readonly string[];
  /** Hex SHA-256 of the body (or the X-Sdk-Content-Sha256 value the client signed). */
  readonly payloadHash: string;
}

export interface AuthorizationHeader {
  readonly accessKey: string;
  readonly signedHeaders: readonly string[];
  readonly signature: string;
}

/** Parses `SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex`; undefined if malformed. */
export function parseAuthorization(value: string): AuthorizationHeader | undefined {
  if (!value.startsWith(`${ALGORITHM} `)) return undefined;
  const fields = new Map<string, string>();
  for (const part of value.slice(ALGORITHM.length + 1).split(",")) {
    const equals = part.indexOf("=");
    if (equals < 0) return undefined;
    fields.set(part.slice(0, equals).trim(), part.slice(equals + 1).trim());
  }
  const accessKey = fields.get("Access");
  const signedHeaders = fields.get("SignedHeaders");
  const signature = fields.get("Signature");
  if (!accessKey || !signedHeaders || !signature || !/^[0-9a-f]{64}$/.test(signature)) {
    return undefined;
  }
  return { accessKey, signedHeaders: signedHeaders.split(";"), signature };
}

/**
 * The order of the canonical header lines. Huawei's signers sort header
 * names by code unit ("code-unit": Go, Java, Python...), but the Node SDK
 * sorts the lines with localeCompare ("locale") while still listing the
 * signed names by code unit. The two differ only when a name holds
 * punctuation other than "-" (e.g. "_"), see headerOrdersDiffer.
 */
export type HeaderOrder = "code-unit" | "locale";

const collator = new Intl.Collator("en");

export function canonicalRequest(
  parts: SignedRequestParts,
  headerOrder: HeaderOrder = "code-unit",
): string {
  const names = [...parts.signedHeaders].sort();
  const lines = headerOrder === "code-unit" ? names : [...names].sort(collator.compare);
  const headers = lines.map((name) => `${name}:${parts.header(name) ?? ""}\n`).join("");
  return [
    parts.method,
    canonicalUri(parts.rawPath),
    canonicalQuery(parts.rawQuery),
    headers,
    names.join(";"),
    parts.payloadHash,
  ].join("\n");
}

/** Whether the two header orders give different canonical requests for these names. */
export function headerOrdersDiffer(names: readonly string[]): boolean {
  const byCodeUnit = [...names].sort();
  const byLocale = [...names].sort(collator.compare);
  return byCodeUnit.some((name, i) => name !== byLocale[i]);
}

export function stringToSign(sdkDate: string, canonical: string): string {
  return `${ALGORITHM}\n${sdkDate}\n${sha256Hex(canonical)}`;
}

export function sign(
  secretKey: string,
  sdkDate: string,
  parts: SignedRequestParts,
  headerOrder: HeaderOrder = "code-unit",
): string {
  return createHmac("sha256", secretKey)
    .update(stringToSign(sdkDate, canonicalRequest(parts, headerOrder)))
    .digest("hex");
}

/** Compares two hex signatures in time independent of where they differ. */
export function signaturesEqual(expected: string, given: string): boolean {
  const a = Buffer.from(expected, "hex");
  const b = Buffer.from(given, "hex");
  return a.length === b.length && timingSafeEqual(a, b);
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * X-Sdk-Date (YYYYMMDDTHHMMSSZ, UTC) as epoch milliseconds; undefined if
 * malformed.
 */
export function parseSdkDate(value: string): number | undefined {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (match === null) return undefined;
  const [year, month, day, hour, minute, second] = match.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const time = Date.UTC(year, month - 1, day, hour, minute, second);
  const check = new Date(time);
  // Date.UTC rolls 2026-02-30 over into March, month 13 into the next year
  // and second 60 into the next minute: reject times that do not exist.
  const exists =
    check.getUTCFullYear() === year &&
    check.getUTCMonth() === month - 1 &&
    check.getUTCDate() === day &&
    check.getUTCHours() === hour &&
    check.getUTCMinutes() === minute &&
    check.getUTCSeconds() === second;
  return exists ? time : undefined;
}

/** Each segment escaped like the SDK's urlEncode, always ending in "/". */
function canonicalUri(rawPath: string): string {
  const path = rawPath.split("/").map(percentEncode).join("/");
  return path.endsWith("/") ? path : `${path}/`;
}

function canonicalQuery(rawQuery: string): string {
  if (rawQuery === "") return "";
  const values = new Map<string, string[]>();
  for (const [key, value] of new URLSearchParams(rawQuery)) {
    const list = values.get(key) ?? [];
    list.push(value);
    values.set(key, list);
  }
  return [...values.keys()]
    .sort()
    .flatMap((key) =>
      (values.get(key) ?? [])
        .sort()
        .map((value) => `${percentEncode(key)}=${percentEncode(value)}`),
    )
    .join("&");
}

/** RFC 3986 percent-encoding, keeping only the unreserved characters A-Za-z0-9-_.~ */
function percentEncode(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}
