import { expect } from "vitest";
import { formatOneHash } from "../../src/audit/chain.js";
import { parseAuditRecord } from "../../src/audit/record-text.js";
import { type AuditEntry, GENESIS_HASH } from "../../src/keystore/audit-types.js";
import type { Store } from "../../src/keystore/types.js";
import { entryOf, expectUnbrokenChain } from "./chain-check.js";
import { makeAuditEntry, P1, P2, TEST_CHAIN_KEY, testAppend } from "./fixtures.js";

/** An audit row as kmsd wrote it before format 2: its fields, the previous hash and its own. */
export interface FormatOneRow {
  readonly seq: number;
  readonly entry: AuditEntry;
  readonly prevHash: string;
  readonly hash: string;
}

/**
 * Five records as the old per-record chain hashed them under TEST_CHAIN_KEY:
 * times out of order, both projects, an empty context and one whose keys
 * are not in sorted order.
 */
export function formatOneTrail(): FormatOneRow[] {
  const entries = [50, 10, 30, 70, 20].map((time, i) =>
    makeAuditEntry({
      time,
      projectId: i % 2 === 0 ? P1 : P2,
      context: i === 1 ? {} : { b: "2", a: "1", "ü 🔑": "x" },
      principal: i === 2 ? "cli:ünïcode" : "AK000000000001",
    }),
  );
  let prevHash = GENESIS_HASH;
  return entries.map((entry, i) => {
    const hash = formatOneHash(TEST_CHAIN_KEY, prevHash, i + 1, entry);
    const row = { seq: i + 1, entry, prevHash, hash };
    prevHash = hash;
    return row;
  });
}

/** The old table's column values of a row, in its column order (seq .. hash). */
export function formatOneValues(row: FormatOneRow): unknown[] {
  const { entry } = row;
  return [
    row.seq,
    entry.time,
    entry.requestId,
    entry.protocol,
    entry.projectId,
    entry.principal,
    entry.operation,
    entry.keyId,
    entry.sequence,
    entry.outcome,
    entry.latencyUs,
    JSON.stringify(entry.context),
    row.prevHash,
    row.hash,
  ];
}

/**
 * What a store migrated from `trail` must hold: format 1 records carrying
 * their old hashes as seals and the same entries; an append then seals on
 * from them into one unbroken chain; time filters work over both formats.
 */
export async function expectMigratedTrail(store: Store, trail: readonly FormatOneRow[]) {
  const migrated = await store.readAudit({ limit: 100 });
  expect(migrated.map(({ format, seal }) => ({ format, seal }))).toEqual(
    trail.map((row) => ({ format: 1, seal: row.hash })),
  );
  expect(migrated.map((record) => entryOf(parseAuditRecord(record)))).toEqual(
    trail.map((row) => row.entry),
  );
  await store.appendAudit(testAppend([makeAuditEntry({ time: 40 }), makeAuditEntry({ time: 5 })]));
  const all = await store.readAudit({ limit: 100 });
  expectUnbrokenChain(all);
  expect(all.slice(trail.length).map((record) => record.format)).toEqual([2, 2]);
  // time_bound was filled in for the migrated rows: time filters still hold.
  for (const since of [10, 30, 45, 70, 71]) {
    expect(await store.readAudit({ since, limit: 100 })).toEqual(
      all.filter((record) => record.time >= since),
    );
  }
}
