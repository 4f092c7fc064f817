import type { StoredAuditRecord } from "../audit-types.js";
import type { Store } from "../types.js";
import { allKeys, auditRecords, nonEmptyTables, type TableName } from "./store-contents.js";

export class TargetNotEmptyError extends Error {
  constructor(readonly tables: readonly TableName[]) {
    super(
      `the target store is not empty (it holds ${tables.join(", ")}): copy only into a new data directory or an empty database`,
    );
    this.name = "TargetNotEmptyError";
  }
}

export interface CopyResult {
  /** The source's audit head when the copy started: records after it were not copied. */
  readonly auditHeadSeq: number;
}

/**
 * Copies everything `source` holds into the empty `target`: metadata (the
 * root key's fingerprint, the wrapped audit key), keys with every version,
 * credentials, tokens, and the audit trail with its seals unchanged. The
 * change feed is not copied: processes on the target start following the
 * target's own.
 *
 * Not atomic across tables: when it fails midway the target holds part of
 * the store and must be emptied before trying again (a second copy refuses
 * it). Copy a store no server writes to, or records written meanwhile are
 * missed (and the verification that follows reports it).
 */
export async function copyStore(source: Store, target: Store): Promise<CopyResult> {
  const found = await nonEmptyTables(target);
  if (found.length > 0) throw new TargetNotEmptyError(found);
  const auditHeadSeq = (await source.auditHead())?.seq ?? 0;

  // Metadata first: a target that fails later already names its root key, so
  // nothing can adopt another one for it.
  for (const { name, value } of await source.listMeta()) await target.setMeta(name, value);
  for await (const key of allKeys(source)) {
    await target.importKey(key, await source.listKeyVersions(key.keyId));
  }
  for (const credential of await source.listCredentials()) {
    await target.createCredential(credential);
  }
  for (const token of await source.listTokens()) await target.createToken(token);
  let copied: StoredAuditRecord | undefined;
  for await (const page of auditRecords(source, auditHeadSeq)) {
    // Records go over verbatim (text, seal, format): each page must land on
    // the same record it follows in the source.
    const follows = copied;
    await target.appendAudit((head) => {
      if (head?.seq !== follows?.seq || head?.seal !== follows?.seal) {
        throw new Error(
          `audit record ${page[0]?.seq} would not follow the same record as in the source`,
        );
      }
      return page;
    });
    copied = page.at(-1);
  }
  return { auditHeadSeq };
}
