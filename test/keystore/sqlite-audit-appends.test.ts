import { createSecretKey } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ChainVerifier, sealEntries } from "../../src/audit/chain.js";
import type { AuditFormat, StoredAuditRecord } from "../../src/keystore/audit-types.js";
import {
  type AuditAppendRow,
  packAuditRecords,
  recordIndexFields,
  unpackAuditAppend,
} from "../../src/keystore/sqlite/audit-appends.js";

/** A record to pack, and what its text says (NaN / "" where it says nothing usable). */
interface Case {
  readonly record: StoredAuditRecord;
  readonly textTime: number;
  readonly textProject: string;
}

const HEX = "0123456789abcdef".split("");
const seal = fc.string({ unit: fc.constantFrom(...HEX), minLength: 64, maxLength: 64 });
const time = fc.oneof(
  fc.integer({ min: -100, max: 100 }),
  fc.integer({ min: 1_700_000_000_000, max: 1_700_000_100_000 }),
  fc.constantFrom(Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER),
);
const project = fc.oneof(
  fc.constantFrom("", "p1", "p2", "p3"),
  fc.string({ unit: "grapheme", maxLength: 12 }),
);

/** A text that is a JSON object: time and projectId each present or not, other fields around them. */
const objectText = fc
  .record(
    {
      time: fc.option(time, { nil: undefined }),
      projectId: fc.option(project, { nil: undefined }),
      note: fc.string({ unit: "grapheme", maxLength: 20 }),
    },
    { requiredKeys: ["note"] },
  )
  .map(({ time, projectId, note }) => ({
    text: JSON.stringify({ note, time, projectId, operation: "EncryptData" }),
    textTime: time ?? Number.NaN,
    textProject: projectId ?? "",
  }));

/** Texts that are not JSON, or JSON without a usable time or project: NaN and "". */
const otherText = fc
  .oneof(
    fc.constantFrom(
      "",
      "not json",
      "{",
      '{"time":1',
      "[1,2]",
      "null",
      "42",
      '"a string"',
      '{"time":"5","projectId":7}',
      '[{"time":5,"projectId":"p1"}]',
      "\r",
    ),
    fc.string({ unit: "grapheme", maxLength: 30 }).filter((text) => {
      if (text.includes("\n")) return false;
      try {
        const parsed: unknown = JSON.parse(text);
        return typeof parsed !== "object" || parsed === null || Array.isArray(parsed);
      } catch {
        return true;
      }
    }),
  )
  .map((text) => ({ text, textTime: Number.NaN, textProject: "" }));

/** One record's makings: whether a gap precedes it, and how long. */
const recordSpec = fc.record({
  gap: fc.oneof(
    { weight: 5, arbitrary: fc.constant(0) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }) },
  ),
  format: fc.constantFrom<AuditFormat>(1, 2),
  seal: fc.option(seal, { nil: undefined, freq: 2 }),
  text: fc.oneof({ weight: 4, arbitrary: objectText }, { weight: 1, arbitrary: otherText }),
  // The time and project the builder gives a record whose text names none.
  fallbackTime: time,
  fallbackProject: project,
});

/** Records with seqs from some start, consecutive but for the occasional gap. */
const cases = fc
  .tuple(fc.integer({ min: 1, max: 1000 }), fc.array(recordSpec, { maxLength: 40 }))
  .map(([start, specs]) => {
    let seq = start - 1;
    return specs.map((spec): Case => {
      seq += 1 + spec.gap;
      const { text, textTime, textProject } = spec.text;
      return {
        record: {
          seq,
          time: Number.isNaN(textTime) ? spec.fallbackTime : textTime,
          projectId: textProject === "" ? spec.fallbackProject : textProject,
          text,
          seal: spec.seal,
          format: spec.format,
        },
        textTime,
        textProject,
      };
    });
  });

const timeBound = fc.oneof(fc.constant(Number.MIN_SAFE_INTEGER), time);

/** The parts of a record that round-trip as they are. */
function kept(record: StoredAuditRecord) {
  return { seq: record.seq, text: record.text, seal: record.seal, format: record.format };
}

function row(fields: Partial<AuditAppendRow>): AuditAppendRow {
  return {
    last_seq: 1,
    first_seq: 1,
    time_bound: 0,
    format: 2,
    records: "{}",
    seal: null,
    ...fields,
  };
}

describe("audit appends: packing records into rows", () => {
  it("unpacks to exactly the records packed, with time and project read from each text", () => {
    fc.assert(
      fc.property(cases, timeBound, (input, bound) => {
        const records = input.map((c) => c.record);
        const unpacked = packAuditRecords(records, bound).flatMap(({ row }) =>
          unpackAuditAppend(row),
        );

        expect(unpacked.map(kept)).toEqual(records.map(kept));
        unpacked.forEach((record, i) => {
          const { textTime, textProject } = input[i] as Case;
          if (Number.isNaN(textTime)) expect(Number.isNaN(record.time)).toBe(true);
          else expect(record.time).toBe(textTime);
          expect(record.projectId).toBe(textProject);
        });
      }),
      { numRuns: 500 },
    );
  });

  it("makes rows of consecutive records of one format, sealed only at their end, with their projects and time bound", () => {
    fc.assert(
      fc.property(cases, timeBound, (input, bound) => {
        const records = input.map((c) => c.record);
        const packed = packAuditRecords(records, bound);

        let next = 0;
        let runningBound = bound;
        let previous: StoredAuditRecord[] | undefined;
        for (const { row, projects } of packed) {
          const count = row.last_seq - row.first_seq + 1;
          const run = records.slice(next, next + count);
          next += count;
          expect(run.length).toBe(count);
          expect(run.map((r) => r.seq)).toEqual(run.map((_, i) => row.first_seq + i));
          expect(row.records).toBe(run.map((r) => r.text).join("\n"));
          expect(run.every((r) => r.format === row.format)).toBe(true);
          expect(run.slice(0, -1).every((r) => r.seal === undefined)).toBe(true);
          expect(row.seal).toBe(run.at(-1)?.seal ?? null);
          expect(projects).toEqual(new Set(run.map((r) => r.projectId)));
          for (const r of run) runningBound = Math.max(runningBound, r.time);
          expect(row.time_bound).toBe(runningBound);
          // A row ends only where it must: at a seal, a change of format or a gap.
          if (previous !== undefined) {
            const last = previous.at(-1) as StoredAuditRecord;
            const first = run[0] as StoredAuditRecord;
            expect(
              last.seal !== undefined || last.format !== first.format || first.seq !== last.seq + 1,
            ).toBe(true);
          }
          previous = run;
        }
        expect(next).toBe(records.length);
      }),
      { numRuns: 500 },
    );
  });

  it("packs an append of kmsd's into one row, and nothing into none", () => {
    const key = createSecretKey(Buffer.alloc(32, 3));
    const entries = [10, 30, 20].map((t, i) => ({
      time: t,
      requestId: `req-${i}`,
      protocol: "grpc",
      projectId: i === 1 ? "p2" : "p1",
      principal: "AK1",
      operation: "EncryptData",
      keyId: `k${i}`,
      sequence: "",
      outcome: "OK",
      latencyUs: 5,
      context: {},
    }));
    const records = sealEntries(key, entries)({ seq: 4, seal: "ab".repeat(32) });

    const packed = packAuditRecords(records, 25);

    expect(packed).toEqual([
      {
        row: {
          last_seq: 7,
          first_seq: 5,
          time_bound: 30,
          format: 2,
          records: records.map((r) => r.text).join("\n"),
          seal: records[2]?.seal,
        },
        projects: new Set(["p1", "p2"]),
      },
    ]);
    expect(packAuditRecords([], 25)).toEqual([]);
  });

  it("keeps a number as the time bound when a text has no time (a tampered trail, copied)", () => {
    const record = (seq: number, text: string): StoredAuditRecord => ({
      seq,
      ...recordIndexFields(text),
      text,
      seal: seq === 3 ? "cd".repeat(32) : undefined,
      format: 2,
    });
    const records = [record(1, "[]"), record(2, '{"time":40,"projectId":"p1"}'), record(3, "{")];
    expect(records.map((r) => r.time)).toEqual([Number.NaN, 40, Number.NaN]);

    expect(packAuditRecords(records.slice(0, 1), 25)[0]?.row.time_bound).toBe(25);
    expect(packAuditRecords(records, 25)[0]?.row.time_bound).toBe(40);
    expect(packAuditRecords(records, 50)[0]?.row.time_bound).toBe(50);
  });

  it("refuses a text holding a newline, wherever it is", () => {
    const record = (seq: number, text: string, sealed = false): StoredAuditRecord => ({
      seq,
      time: seq,
      projectId: "p1",
      text,
      seal: sealed ? "5e".repeat(32) : undefined,
      format: 2,
    });
    // Rows before the bad record are complete (sealed), yet nothing is returned.
    const records = [
      record(1, "{}", true),
      record(2, "{}", true),
      record(3, "{}"),
      record(4, '{"time":4,\n"projectId":"p1"}'),
      record(5, "{}", true),
    ];
    expect(() => packAuditRecords(records, 0)).toThrow(/audit record 4 holds a newline/);
    expect(() => packAuditRecords([record(9, "\n")], 0)).toThrow(/audit record 9/);
    expect(() => packAuditRecords([record(9, "{}\r\n")], 0)).toThrow(/audit record 9/);
  });
});

describe("audit appends: unpacking a row", () => {
  it("refuses an unknown format, naming the row's seqs", () => {
    for (const format of [3, 0, -1]) {
      expect(() =>
        unpackAuditAppend(row({ first_seq: 7, last_seq: 9, format, records: "{}\n{}\n{}" })),
      ).toThrow(new RegExp(`audit records 7 to 9 have an unknown format ${format}`));
    }
  });

  it("gives an unsealed row's records no seal, and a sealed row's only to its last", () => {
    const texts = ['{"time":3,"projectId":"a"}', '{"time":1,"projectId":"b"}'];
    const base = { first_seq: 4, last_seq: 5, format: 1, records: texts.join("\n") };
    expect(unpackAuditAppend(row(base))).toEqual([
      { seq: 4, time: 3, projectId: "a", text: texts[0], seal: undefined, format: 1 },
      { seq: 5, time: 1, projectId: "b", text: texts[1], seal: undefined, format: 1 },
    ]);
    expect(unpackAuditAppend(row({ ...base, seal: "ff" })).map((r) => r.seal)).toEqual([
      undefined,
      "ff",
    ]);
  });

  it("unpacks a row whose texts do not fill its seq range as it is, counting seqs from first_seq", () => {
    // A row edited behind kmsd's back. The store does not repair or refuse
    // it: its records are numbered from first_seq and the row's seal goes
    // to its last text, whatever last_seq says. A seal covers each record's
    // seq and text, so the verifier recomputes it over other records than
    // were sealed and reports a seal mismatch (and, with too many texts,
    // the next row's first seq then repeats one of these).
    const texts = ["{}", "[]", "null", "x"];
    const fewer = unpackAuditAppend(
      row({ first_seq: 5, last_seq: 7, records: texts.slice(0, 2).join("\n"), seal: "aa" }),
    );
    expect(fewer.map((r) => [r.seq, r.text, r.seal])).toEqual([
      [5, "{}", undefined],
      [6, "[]", "aa"],
    ]);
    const more = unpackAuditAppend(
      row({ first_seq: 5, last_seq: 7, records: texts.join("\n"), seal: "aa" }),
    );
    expect(more.map((r) => [r.seq, r.text, r.seal])).toEqual([
      [5, "{}", undefined],
      [6, "[]", undefined],
      [7, "null", undefined],
      [8, "x", "aa"],
    ]);
  });

  it("lets the verifier report a seal mismatch for a row that lost or gained a text", () => {
    const key = createSecretKey(Buffer.alloc(32, 4));
    const entries = [1, 2, 3].map((t) => ({
      time: t,
      requestId: `req-${t}`,
      protocol: "rest",
      projectId: "p1",
      principal: "",
      operation: "GET /",
      keyId: "",
      sequence: "",
      outcome: "OK",
      latencyUs: 1,
      context: {},
    }));
    const records = sealEntries(key, entries)(undefined);
    const [packed] = packAuditRecords(records, Number.MIN_SAFE_INTEGER);
    const sealed = (packed as { row: AuditAppendRow }).row;
    const verify = (stored: StoredAuditRecord[]) => {
      const verifier = new ChainVerifier(key);
      for (const record of stored) {
        const broken = verifier.check(record);
        if (broken !== undefined) return broken;
      }
      return verifier.finish();
    };
    const texts = sealed.records.split("\n");

    expect(verify(unpackAuditAppend(sealed))).toBeUndefined();
    expect(verify(unpackAuditAppend({ ...sealed, records: texts.slice(0, 2).join("\n") }))).toEqual(
      { seq: 1, reason: "seal", lastSeq: 2 },
    );
    expect(
      verify(unpackAuditAppend({ ...sealed, records: [...texts, texts[0]].join("\n") })),
    ).toEqual({ seq: 1, reason: "seal", lastSeq: 4 });
  });
});
