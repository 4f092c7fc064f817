import { crc32c } from "../crypto/crc32c.js";
import type { HuaweiErrorCode } from "../errors/huawei-codes.js";
import { kmsError } from "../errors/kms-error.js";

/** A request field that may come with a CRC32C of its bytes (Google Cloud KMS's scheme). */
export interface ChecksummedField {
  /** The field's name: the checksum field is `${field}_crc32c`. */
  readonly field: string;
  /** The checksum the request carried, if any. */
  readonly crc32c: number | undefined;
  /** The bytes the checksum covers (docs/batch-and-integrity.md). */
  readonly bytes: () => Uint8Array;
  /** The field's Huawei code, answered on a mismatch. */
  readonly code: HuaweiErrorCode;
}

/**
 * Checks every checksum the request carried, before any crypto runs: a
 * mismatch means the request was corrupted on its way, and is refused with
 * the field's code. Returns undefined when the request carried none (the
 * response then carries no integrity fields either); otherwise, per field,
 * whether its checksum was present and verified.
 */
export function verifyChecksums<K extends string>(
  fields: Readonly<Record<K, ChecksummedField>>,
): Record<K, boolean> | undefined {
  const entries = Object.entries(fields) as [K, ChecksummedField][];
  if (entries.every(([, field]) => field.crc32c === undefined)) return undefined;
  const verified = {} as Record<K, boolean>;
  for (const [name, field] of entries) {
    if (field.crc32c !== undefined && crc32c(field.bytes()) !== field.crc32c) {
      throw kmsError(
        field.code,
        `${field.field}_crc32c does not match ${field.field}: the request was corrupted on its way; ` +
          "compute the checksum again and retry",
      );
    }
    verified[name] = field.crc32c !== undefined;
  }
  return verified;
}
