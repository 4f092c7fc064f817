import { createHash } from "node:crypto";
import type { StoredAuditRecord } from "../audit-types.js";
import type { KeyRecord, Store } from "../types.js";

/** What a store holds, table by table, as `kmsd store copy` moves and compares it. */
export const TABLES = [
  "meta",
  "keys",
  "key_versions",
  "credentials",
  "tokens",
  "audit_records",
] as const;
export type TableName = (typeof TABLES)[number];

export interface TableSummary {
  readonly count: number;
  /** Hex SHA-256 over the table's records in a fixed order, each as canonical JSON. */
  readonly sha256: string;
}

export type StoreSummary = Readonly<Record<TableName, TableSummary>>;

const PAGE = 1000;

/** Every key of every project, a page at a time, in key id order. */
export async function* allKeys(store: Store): AsyncGenerator<KeyRecord> {
  let after = "";
  for (;;) {
    const page = await store.scanKeys(after, PAGE);
    yield* page;
    const last = page.at(-1);
    if (last === undefined || page.length < PAGE) return;
    after = last.keyId;
  }
}

/** Audit records in seq order, a page at a time, up to `lastSeq` when given. */
export async function* auditRecords(
  store: Store,
  lastSeq = Number.POSITIVE_INFINITY,
): AsyncGenerator<StoredAuditRecord[]> {
  let afterSeq = 0;
  while (afterSeq < lastSeq) {
    const page = (await store.readAudit({ afterSeq, limit: PAGE })).filter((r) => r.seq <= lastSeq);
    if (page.length > 0) yield page;
    const last = page.at(-1);
    if (last === undefined || page.length < PAGE) return;
    afterSeq = last.seq;
  }
}

/**
 * JSON with object keys sorted and bytes as base64: two backends that build
 * their records with properties in different orders digest alike, and a
 * field one of them returns with another type (a string for a number, say)
 * digests differently.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v instanceof Uint8Array) return { bytes: Buffer.from(v).toString("base64") };
    if (typeof v === "object" && v !== null && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    return v;
  });
}

class TableDigest {
  #count = 0;
  readonly #hash = createHash("sha256");

  add(record: unknown): void {
    this.#count++;
    this.#hash.update(canonicalJson(record)).update("\n");
  }

  summary(): TableSummary {
    return { count: this.#count, sha256: this.#hash.digest("hex") };
  }
}

/**
 * Counts and digests every table of the store, reading it only through the
 * Store contract (so any two backends compare). The change feed is left out:
 * it coordinates the processes sharing one store and is not copied.
 * `auditUpTo` leaves out records appended after that seq.
 */
export async function summarizeStore(store: Store, auditUpTo?: number): Promise<StoreSummary> {
  const digests = Object.fromEntries(TABLES.map((t) => [t, new TableDigest()])) as Record<
    TableName,
    TableDigest
  >;
  for (const entry of await store.listMeta()) digests.meta.add(entry);
  for await (const key of allKeys(store)) {
    digests.keys.add(key);
    for (const version of await store.listKeyVersions(key.keyId)) {
      digests.key_versions.add(version);
    }
  }
  for (const credential of await store.listCredentials()) digests.credentials.add(credential);
  for (const token of await store.listTokens()) digests.tokens.add(token);
  for await (const page of auditRecords(store, auditUpTo)) {
    for (const record of page) digests.audit_records.add(record);
  }
  return Object.fromEntries(TABLES.map((t) => [t, digests[t].summary()])) as Record<
    TableName,
    TableSummary
  >;
}

/** The tables that hold anything (an empty list for an empty store). */
export async function nonEmptyTables(store: Store): Promise<TableName[]> {
  const found: TableName[] = [];
  if ((await store.listMeta()).length > 0) found.push("meta");
  if ((await store.scanKeys("", 1)).length > 0) found.push("keys");
  if ((await store.listCredentials()).length > 0) found.push("credentials");
  if ((await store.listTokens()).length > 0) found.push("tokens");
  if ((await store.auditHead()) !== undefined) found.push("audit_records");
  return found;
}
