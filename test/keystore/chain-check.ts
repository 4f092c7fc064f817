import { expect } from "vitest";
import { ChainVerifier } from "../../src/audit/chain.js";
import { parseAuditRecord } from "../../src/audit/record-text.js";
import type { AuditEntry, AuditRecord, StoredAuditRecord } from "../../src/keystore/audit-types.js";
import { TEST_CHAIN_KEY } from "./fixtures.js";

/** Seqs 1, 2, 3, ..., every record under a seal that holds (TEST_CHAIN_KEY), none after the last. */
export function expectUnbrokenChain(records: readonly StoredAuditRecord[]): void {
  expect(records.map((record) => record.seq)).toEqual(records.map((_, i) => i + 1));
  const verifier = new ChainVerifier(TEST_CHAIN_KEY);
  for (const record of records) expect(verifier.check(record)).toBeUndefined();
  expect(verifier.finish()).toBeUndefined();
  expect(verifier.verified).toBe(records.length);
}

/** The entry a stored record holds, without what the store added (seq, text, seal, format). */
export function entryOf(record: AuditRecord): AuditEntry {
  const { seq: _seq, text: _text, seal: _seal, format: _format, ...entry } = record;
  return entry;
}

/** Each record's request id, read out of its text. */
export function requestIds(records: readonly StoredAuditRecord[]): string[] {
  return records.map((record) => parseAuditRecord(record).requestId);
}
