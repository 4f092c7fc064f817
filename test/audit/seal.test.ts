import { createSecretKey } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ChainVerifier,
  describeBreak,
  formatOneHash,
  sealEntries,
  UnsealedHeadError,
} from "../../src/audit/chain.js";
import { auditText, parseAuditRecord } from "../../src/audit/record-text.js";
import { firstSeqSince } from "../../src/keystore/audit-append.js";
import {
  type AuditEntry,
  GENESIS_HASH,
  type StoredAuditRecord,
} from "../../src/keystore/audit-types.js";
import { entryOf } from "../keystore/chain-check.js";
import { makeAuditEntry, TEST_CHAIN_KEY } from "../keystore/fixtures.js";
import { auditEntryArbitrary } from "./entry-arbitrary.js";

/** Appends as the audit log makes them, each continuing the last: a trail of `sizes` appends. */
function trail(...sizes: number[]): StoredAuditRecord[] {
  const records: StoredAuditRecord[] = [];
  for (const size of sizes) {
    const last = records.at(-1);
    const entries = Array.from({ length: size }, () => makeAuditEntry());
    records.push(
      ...sealEntries(TEST_CHAIN_KEY, entries)(last && { seq: last.seq, seal: last.seal }),
    );
  }
  return records;
}

/** The first break the verifier reports over the whole trail, finish() included. */
function firstBreak(records: readonly StoredAuditRecord[], key = TEST_CHAIN_KEY) {
  const verifier = new ChainVerifier(key);
  for (const record of records) {
    const broken = verifier.check(record);
    if (broken !== undefined) return { broken, verified: verifier.verified };
  }
  return { broken: verifier.finish(), verified: verifier.verified };
}

const text = fc.string({ unit: "binary", maxLength: 40 });
const entry = auditEntryArbitrary(text, fc.integer({ min: 0, max: 2 ** 45 }));

describe("audit record text", () => {
  it("reads back every entry exactly as written, whatever its strings", () => {
    fc.assert(
      fc.property(fc.array(entry, { minLength: 1, maxLength: 4 }), (entries) => {
        const records = sealEntries(TEST_CHAIN_KEY, entries)(undefined);
        expect(records.map((record) => entryOf(parseAuditRecord(record)))).toEqual(entries);
        for (const record of records) expect(record.text).not.toMatch(/\n/);
      }),
      { numRuns: 300 },
    );
  });

  it("refuses a context that is not strings only", () => {
    const context = { n: 1 } as unknown as Record<string, string>;
    expect(() => auditText(makeAuditEntry({ context }))).toThrow(TypeError);
    expect(() => sealEntries(TEST_CHAIN_KEY, [makeAuditEntry({ context })])).toThrow(TypeError);
  });

  it.each([
    ["not JSON", "{", /its text is not JSON/],
    ["an array", "[]", /its text is not a JSON object/],
    ["a field missing", JSON.stringify({ time: 1 }), /requestId is not a string/],
    ["a fractional time", auditText(makeAuditEntry({ time: 1.5 })), /time is not an integer/],
    [
      "a non-string context value",
      JSON.stringify({ ...JSON.parse(auditText(makeAuditEntry())), context: { a: 1 } }),
      /context is not a map of strings/,
    ],
  ])("names a record whose text is %s", (_name, recordText, problem) => {
    const record = { ...trail(1)[0], text: recordText } as StoredAuditRecord;
    expect(() => parseAuditRecord(record)).toThrow(problem);
  });
});

describe("audit seals", () => {
  it("seal only the last record of each append, chained to the seal before", () => {
    const records = trail(3, 1, 2);
    expect(records.map((record) => record.seal !== undefined)).toEqual([
      false,
      false,
      true,
      true,
      false,
      true,
    ]);
    expect(records.every((record) => record.format === 2)).toBe(true);
    expect(firstBreak(records)).toEqual({ broken: undefined, verified: 6 });
  });

  it("break under another key", () => {
    const other = createSecretKey(Buffer.alloc(32, 8));
    expect(firstBreak(trail(2, 2), other).broken).toEqual({ seq: 1, reason: "seal", lastSeq: 2 });
  });

  it("break at the append a changed character, seq or seal is in", () => {
    const records = trail(2, 3, 1);
    const changes: [string, (r: StoredAuditRecord) => StoredAuditRecord][] = [
      ["text", (r) => ({ ...r, text: r.text.replace('"grpc"', '"rest"') })],
      ["seal", (r) => ({ ...r, seal: r.seal?.replace(/^./, (c) => (c === "0" ? "1" : "0")) })],
    ];
    for (const [name, change] of changes) {
      const changed = records.map((r) => (r.seq === 5 ? change(r) : r));
      expect(firstBreak(changed), name).toEqual({
        broken: { seq: 3, reason: "seal", lastSeq: 5 },
        verified: 2,
      });
    }
    // Records 3 and 4 swapped, seqs kept: same texts, other order.
    const swapped = records.map((r) =>
      r.seq === 3 ? { ...records[3], seq: 3 } : r.seq === 4 ? { ...records[2], seq: 4 } : r,
    ) as StoredAuditRecord[];
    expect(firstBreak(swapped).broken).toEqual({ seq: 3, reason: "seal", lastSeq: 5 });
  });

  it("report a missing seq, and records after the last seal", () => {
    const records = trail(2, 2);
    expect(firstBreak(records.filter((r) => r.seq !== 3))).toEqual({
      broken: { seq: 4, reason: "gap", expectedSeq: 3 },
      verified: 2,
    });
    const unsealedTail = [...records, { ...records[0], seq: 5, seal: undefined }];
    expect(firstBreak(unsealedTail as StoredAuditRecord[])).toEqual({
      broken: { seq: 5, reason: "unsealed" },
      verified: 4,
    });
    expect(describeBreak({ seq: 5, reason: "unsealed" })).toMatch(/carry no seal/);
  });

  it("refuse to append after a head that carries no seal", () => {
    const build = sealEntries(TEST_CHAIN_KEY, [makeAuditEntry()]);
    expect(() => build({ seq: 7, seal: undefined })).toThrow(UnsealedHeadError);
  });

  it("verify format 1 records before format 2 ones, and no format 1 record after", () => {
    const entries = [makeAuditEntry(), makeAuditEntry()];
    let prev = GENESIS_HASH;
    const formatOne = entries.map((e, i): StoredAuditRecord => {
      prev = formatOneHash(TEST_CHAIN_KEY, prev, i + 1, e);
      return {
        seq: i + 1,
        time: e.time,
        projectId: e.projectId,
        text: auditText(e),
        seal: prev,
        format: 1,
      };
    });
    const formatTwo = sealEntries(TEST_CHAIN_KEY, [makeAuditEntry()])({ seq: 2, seal: prev });
    expect(firstBreak([...formatOne, ...formatTwo])).toEqual({ broken: undefined, verified: 3 });

    const late = { ...formatOne[0], seq: 4 } as StoredAuditRecord;
    expect(firstBreak([...formatOne, ...formatTwo, late]).broken).toEqual({
      seq: 4,
      reason: "format",
    });
    const changed = {
      ...formatOne[1],
      text: auditText({ ...entries[1], outcome: "X" } as AuditEntry),
    };
    expect(firstBreak([formatOne[0], changed] as StoredAuditRecord[]).broken).toEqual({
      seq: 2,
      reason: "hash",
    });
  });
});

describe("firstSeqSince", () => {
  it("finds the first seq a time filter can match, gaps and all", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ time: fc.integer({ min: 0, max: 50 }), gap: fc.nat(3) }), {
          maxLength: 40,
        }),
        fc.integer({ min: -1, max: 52 }),
        fc.nat(45),
        async (rows, since, afterSeq) => {
          let seq = 0;
          let bound = Number.MIN_SAFE_INTEGER;
          const stored = rows.map((row) => {
            seq += 1 + row.gap;
            bound = Math.max(bound, row.time);
            return { seq, time: row.time, time_bound: bound };
          });
          const headSeq = stored.at(-1)?.seq ?? 0;
          const from = await firstSeqSince(since, afterSeq, headSeq, (at) => {
            const found = stored.find((row) => row.seq >= at);
            return found && { seq: found.seq, time_bound: found.time_bound };
          });
          const after = stored.filter((row) => row.seq > afterSeq);
          // Nothing that matches is skipped...
          expect(after.filter((row) => row.time >= since).every((row) => row.seq >= from)).toBe(
            true,
          );
          // ...and the read starts no earlier than it must: at the first record that can match.
          const firstPossible = after.find((row) => row.time_bound >= since);
          expect(from).toBeLessThanOrEqual(firstPossible?.seq ?? Math.max(afterSeq, headSeq) + 1);
          expect(
            after.filter((row) => row.seq >= from && row.seq < (firstPossible?.seq ?? Infinity)),
          ).toEqual([]);
        },
      ),
      { numRuns: 500 },
    );
  });
});
