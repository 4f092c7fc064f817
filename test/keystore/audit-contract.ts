import { describe, expect, it } from "vitest";
import type {
  AuditBuild,
  AuditEntry,
  AuditHead,
  StoredAuditRecord,
} from "../../src/keystore/audit-types.js";
import type { Store } from "../../src/keystore/types.js";
import { expectUnbrokenChain } from "./chain-check.js";
import { makeAuditEntry, P1, P2, testAppend } from "./fixtures.js";

/** testAppend, remembering the heads it was given. */
function recordingAppend(entries: readonly AuditEntry[]) {
  const heads: (AuditHead | undefined)[] = [];
  const build: AuditBuild = (head) => {
    heads.push(head);
    return testAppend(entries)(head);
  };
  return { heads, build };
}

/** The records a correct store holds after these appends to an empty trail. */
function expectedRecords(...appends: readonly AuditEntry[][]): StoredAuditRecord[] {
  const records: StoredAuditRecord[] = [];
  for (const entries of appends) {
    const last = records.at(-1);
    records.push(...testAppend(entries)(last && { seq: last.seq, seal: last.seal }));
  }
  return records;
}

/** AuditStore cases of the store contract; `store` is the open, initially empty store. */
export function describeAuditContract(store: () => Store): void {
  describe("audit trail", () => {
    const ALL = 10_000;

    it("starts empty", async () => {
      expect(await store().auditHead()).toBeUndefined();
      expect(await store().readAudit({ limit: ALL })).toEqual([]);
    });

    it("hands an empty trail's append no head, and keeps its records verbatim, seq from 1", async () => {
      const entries = [makeAuditEntry(), makeAuditEntry({ projectId: P2 }), makeAuditEntry()];
      const { heads, build } = recordingAppend(entries);

      await store().appendAudit(build);

      const expected = expectedRecords(entries);
      expect(expected.map((r) => r.seal === undefined)).toEqual([true, true, false]);
      expect(heads).toEqual([undefined]);
      expect(await store().readAudit({ limit: ALL })).toEqual(expected);
      expect(await store().auditHead()).toEqual({ seq: 3, seal: expected[2]?.seal });
    });

    it("hands each append the stored head, so the seals chain across appends", async () => {
      const appends = [
        [makeAuditEntry()],
        [makeAuditEntry(), makeAuditEntry()],
        [makeAuditEntry()],
      ];
      const recorded = appends.map(recordingAppend);

      for (const { build } of recorded) await store().appendAudit(build);

      const expected = expectedRecords(...appends);
      const stored = await store().readAudit({ limit: ALL });
      expect(stored).toEqual(expected);
      expect(recorded.map(({ heads }) => heads)).toEqual([
        [undefined],
        [{ seq: 1, seal: expected[0]?.seal }],
        [{ seq: 3, seal: expected[2]?.seal }],
      ]);
      expectUnbrokenChain(stored);
      expect(await store().auditHead()).toEqual({ seq: 4, seal: expected[3]?.seal });
    });

    it("finds its query aids whole for a trail it wrote: times out of order, several projects", async () => {
      expect(await store().auditIndexProblem()).toBeUndefined();
      for (const times of [[50, 10, 30], [70], [20, 90, 15], [5]]) {
        const entries = times.map((time, i) =>
          makeAuditEntry({ time, projectId: i % 2 === 0 ? P1 : P2 }),
        );
        await store().appendAudit(testAppend(entries));
      }
      expect(await store().auditIndexProblem()).toBeUndefined();
    });

    it("does nothing for an empty append", async () => {
      await store().appendAudit(testAppend([]));
      expect(await store().auditHead()).toBeUndefined();

      await store().appendAudit(testAppend([makeAuditEntry()]));
      const head = await store().auditHead();
      await store().appendAudit(testAppend([]));

      expect(await store().auditHead()).toEqual(head);
      expect(await store().readAudit({ limit: ALL })).toHaveLength(1);
    });

    it("keeps every character of the text: empty values, unicode, any context", async () => {
      const entries = [
        makeAuditEntry({
          projectId: "",
          principal: "",
          keyId: "",
          sequence: "",
          outcome: "KMS.0205",
          latencyUs: 0,
          context: {},
        }),
        makeAuditEntry({
          protocol: "rest",
          principal: "cli:ünïcode 🔑\u0000\u2028",
          operation: "POST /v1.0/p/kms/encrypt-data",
          sequence: "919c82d4-8046-4722-9094-35c3c6524cff",
          latencyUs: 987_654_321,
          context: { "": "e", "ü 🔑": "0123456789abcdef", b: "x", a: "y", __proto__: "z" },
        }),
      ];

      await store().appendAudit(testAppend(entries));

      const records = await store().readAudit({ limit: ALL });
      expect(records).toEqual(expectedRecords(entries));
      expectUnbrokenChain(records);
    });

    it("writes no part of an append whose build throws, and rethrows that error", async () => {
      const entries = [makeAuditEntry(), makeAuditEntry(), makeAuditEntry()];
      await store().appendAudit(testAppend(entries.slice(0, 1)));
      const thrown = new Error("chain key unavailable");

      const error = await store()
        .appendAudit(() => {
          throw thrown;
        })
        .catch((e) => e);

      expect(error).toBe(thrown);
      expect(await store().readAudit({ limit: ALL })).toEqual(expectedRecords(entries.slice(0, 1)));
      await store().appendAudit(testAppend(entries.slice(1)));
      expect(await store().readAudit({ limit: ALL })).toEqual(
        expectedRecords(entries.slice(0, 1), entries.slice(1)),
      );
    });

    it("refuses records that do not continue the head's seq, writing nothing", async () => {
      await store().appendAudit(testAppend([makeAuditEntry()]));
      const [first] = await store().readAudit({ limit: ALL });
      const next = testAppend([makeAuditEntry(), makeAuditEntry()]);

      for (const renumber of [(seq: number) => seq + 1, (seq: number) => seq - 1]) {
        const shifted: AuditBuild = (head) =>
          next(head).map((record) => ({ ...record, seq: renumber(record.seq) }));
        await expect(store().appendAudit(shifted)).rejects.toThrow(/does not continue the trail/);
      }
      const skipping: AuditBuild = (head) => next(head).filter((record) => record.seq !== 2);
      await expect(store().appendAudit(skipping)).rejects.toThrow(/does not continue the trail/);

      expect(await store().readAudit({ limit: ALL })).toEqual([first]);
    });

    describe("readAudit", () => {
      /** 12 records over both projects in three appends; times go back and forth, some repeat. */
      async function seed(): Promise<StoredAuditRecord[]> {
        const times = [50, 10, 30, 30, 20, 60, 40, 10, 70, 30, 50, 20];
        const entries = times.map((time, i) =>
          makeAuditEntry({ time, projectId: i % 3 === 1 ? P2 : P1 }),
        );
        const appends = [entries.slice(0, 5), entries.slice(5, 7), entries.slice(7)];
        for (const append of appends) await store().appendAudit(testAppend(append));
        return expectedRecords(...appends);
      }

      it("orders by seq, not by time", async () => {
        const all = await seed();
        expect(await store().readAudit({ limit: ALL })).toEqual(all);
      });

      it("filters by project", async () => {
        const all = await seed();
        expect(await store().readAudit({ projectId: P2, limit: ALL })).toEqual(
          all.filter((r) => r.projectId === P2),
        );
        expect(await store().readAudit({ projectId: "no-such-project", limit: ALL })).toEqual([]);
      });

      it("filters by time, inclusively, whatever order the times were appended in", async () => {
        const all = await seed();
        for (const since of [-1, 0, 10, 11, 20, 30, 31, 50, 60, 70, 71]) {
          expect(await store().readAudit({ since, limit: ALL })).toEqual(
            all.filter((r) => r.time >= since),
          );
          for (const afterSeq of [0, 3, 6, 11, 12]) {
            expect(await store().readAudit({ since, afterSeq, limit: ALL })).toEqual(
              all.filter((r) => r.time >= since && r.seq > afterSeq),
            );
          }
        }
      });

      it("reads after a seq, and limits", async () => {
        const all = await seed();
        expect(await store().readAudit({ afterSeq: 9, limit: ALL })).toEqual(all.slice(9));
        expect(await store().readAudit({ afterSeq: 12, limit: ALL })).toEqual([]);
        expect(await store().readAudit({ limit: 4 })).toEqual(all.slice(0, 4));
        expect(await store().readAudit({ afterSeq: 4, limit: 4 })).toEqual(all.slice(4, 8));
      });

      it("combines every filter", async () => {
        const all = await seed();
        const matching = all.filter((r) => r.projectId === P1 && r.time >= 30 && r.seq > 3);
        expect(matching.length).toBeGreaterThan(2);

        const page = await store().readAudit({ projectId: P1, since: 30, afterSeq: 3, limit: 2 });

        expect(page).toEqual(matching.slice(0, 2));
      });

      it("rejects a limit that is not a positive integer with a RangeError", async () => {
        await seed();
        for (const limit of [0, -1, 2.5, Number.NaN]) {
          await expect(store().readAudit({ limit })).rejects.toThrow(RangeError);
        }
      });
    });
  });
}
