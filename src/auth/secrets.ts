import { createHash, randomBytes, randomInt } from "node:crypto";

const UPPER_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const ALPHANUMERIC = `${UPPER_DIGITS}abcdefghijklmnopqrstuvwxyz`;

/** Uniformly random characters from the alphabet (randomInt rejects biased draws). */
function randomString(alphabet: string, length: number): string {
  let out = "";
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)];
  return out;
}

/** An access key shaped like Huawei's: 20 upper-case letters and digits. */
export function newAccessKey(): string {
  return `KMSD${randomString(UPPER_DIGITS, 16)}`;
}

/** A secret key shaped like Huawei's: 40 letters and digits (~238 bits). */
export function newSecretKey(): string {
  return randomString(ALPHANUMERIC, 40);
}

export const TOKEN_PREFIX = "kmsd_";

/** A bearer token: 256 random bits. Only its hash is stored. */
export function newToken(): string {
  return `${TOKEN_PREFIX}${randomBytes(32).toString("base64url")}`;
}

export function newTokenId(): string {
  return `tok-${randomBytes(8).toString("hex")}`;
}

/**
 * A token's stored form. A plain SHA-256 suffices (no slow hash): tokens
 * carry 256 random bits, so there is nothing to guess.
 */
export function tokenHash(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}
