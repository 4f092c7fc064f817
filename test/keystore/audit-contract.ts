import { describe, expect, it } from "vitest";
import type { AuditEntry, AuditRecord } from "../../src/keystore/audit-types.js";
import type { Store } from "../../src/keystore/types.js";
import { GENESIS, makeAuditEntry, P1, P2, testChain } from "./fixtures.js";

interface ChainCall {
  prevHash: string;
  seq: number;
  entry: AuditEntry;
}

/** testChain, remembering what it was asked. */
function recordingChain() {
  const calls: ChainCall[] = [];
  const chain = (prevHash: string, seq: number, entry: AuditEntry) => {
    calls.push({ prevHash, seq, entry });
    return testChain(prevHash, seq, entry);
  };
  return { calls, chain };
}

/** The records a correct store holds after appending `entries` to an empty trail. */
function expectedRecords(entries: readonly AuditEntry[]): AuditRecord[] {
  const records: AuditRecord[] = [];
  let prevHash = GENESIS;
  for (const [i, entry] of entries.entries()) {
    const hash = testChain(prevHash, i + 1, entry);
    records.push({ ...entry, seq: i + 1, prevHash, hash });
    prevHash = hash;
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

    it("chains a batch from the genesis hash, seq from 1, in the given order", async () => {
      const entries = [makeAuditEntry(), makeAuditEntry({ projectId: P2 }), makeAuditEntry()];
      const { calls, chain } = recordingChain();

      await store().appendAudit(entries, chain);

      const expected = expectedRecords(entries);
      expect(await store().readAudit({ limit: ALL })).toEqual(expected);
      expect(calls).toEqual(
        expected.map((r, i) => ({ prevHash: r.prevHash, seq: r.seq, entry: entries[i] })),
      );
      expect(await store().auditHead()).toEqual({ seq: 3, hash: expected[2]?.hash });
    });

    it("continues the chain from the stored head across appends", async () => {
      const entries = [makeAuditEntry(), makeAuditEntry(), makeAuditEntry(), makeAuditEntry()];

      await store().appendAudit(entries.slice(0, 1), testChain);
      await store().appendAudit(entries.slice(1, 3), testChain);
      await store().appendAudit(entries.slice(3), testChain);

      const expected = expectedRecords(entries);
      expect(await store().readAudit({ limit: ALL })).toEqual(expected);
      expect(await store().auditHead()).toEqual({ seq: 4, hash: expected[3]?.hash });
    });

    it("does nothing for an empty batch", async () => {
      const { calls, chain } = recordingChain();
      await store().appendAudit([], chain);
      expect(await store().auditHead()).toBeUndefined();

      await store().appendAudit([makeAuditEntry()], testChain);
      const head = await store().auditHead();
      await store().appendAudit([], chain);

      expect(calls).toEqual([]);
      expect(await store().auditHead()).toEqual(head);
      expect(await store().readAudit({ limit: ALL })).toHaveLength(1);
    });

    it("keeps every field: empty values, unicode, any context", async () => {
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
          principal: "cli:ünïcode 🔑",
          operation: "POST /v1.0/p/kms/encrypt-data",
          sequence: "919c82d4-8046-4722-9094-35c3c6524cff",
          latencyUs: 987_654_321,
          context: { "": "e", "ü 🔑": "0123456789abcdef", b: "x", a: "y" },
        }),
      ];

      await store().appendAudit(entries, testChain);

      const records = await store().readAudit({ limit: ALL });
      expect(records).toEqual(expectedRecords(entries));
      for (const { seq, prevHash, hash, ...entry } of records) {
        expect(testChain(prevHash, seq, entry)).toBe(hash);
      }
    });

    it("writes no part of a batch whose chain throws, and rethrows that error", async () => {
      const entries = [makeAuditEntry(), makeAuditEntry(), makeAuditEntry()];
      await store().appendAudit(entries.slice(0, 1), testChain);
      const thrown = new Error("chain key unavailable");

      const error = await store()
        .appendAudit(entries.slice(1), (prevHash, seq, entry) => {
          if (seq === 3) throw thrown;
          return testChain(prevHash, seq, entry);
        })
        .catch((e) => e);

      expect(error).toBe(thrown);
      expect(await store().readAudit({ limit: ALL })).toEqual(expectedRecords(entries.slice(0, 1)));
      await store().appendAudit(entries.slice(1), testChain);
      expect(await store().readAudit({ limit: ALL })).toEqual(expectedRecords(entries));
    });

    it("refuses an entry whose context holds a non-string, writing nothing", async () => {
      const context = { n: 1 } as unknown as Record<string, string>;
      const entries = [makeAuditEntry(), makeAuditEntry({ context })];
      await expect(store().appendAudit(entries, testChain)).rejects.toThrow();
      expect(await store().auditHead()).toBeUndefined();
    });

    describe("readAudit", () => {
      /** 12 records over both projects; times go back and forth, some repeat. */
      async function seed(): Promise<AuditRecord[]> {
        const times = [50, 10, 30, 30, 20, 60, 40, 10, 70, 30, 50, 20];
        const entries = times.map((time, i) =>
          makeAuditEntry({ time, projectId: i % 3 === 1 ? P2 : P1 }),
        );
        await store().appendAudit(entries.slice(0, 5), testChain);
        await store().appendAudit(entries.slice(5), testChain);
        return expectedRecords(entries);
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

      it("filters by time, inclusively", async () => {
        const all = await seed();
        expect(await store().readAudit({ since: 30, limit: ALL })).toEqual(
          all.filter((r) => r.time >= 30),
        );
        expect(await store().readAudit({ since: 71, limit: ALL })).toEqual([]);
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
