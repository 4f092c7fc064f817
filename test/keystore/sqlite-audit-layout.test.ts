import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type BetterSqlite3 from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type ChainBreak, ChainVerifier, sealEntries } from "../../src/audit/chain.js";
import { auditText } from "../../src/audit/record-text.js";
import type {
  AuditHead,
  AuditQuery,
  AuditStore,
  StoredAuditRecord,
} from "../../src/keystore/audit-types.js";
import { type AuditAppendRow, packAuditRecords } from "../../src/keystore/sqlite/audit-appends.js";
import { AuditTable } from "../../src/keystore/sqlite/audit-table.js";
import { openSqliteDatabase } from "../../src/keystore/sqlite/driver.js";
import { MIGRATIONS, migrate } from "../../src/keystore/sqlite/migrations.js";
import { openSqliteStore, type SqliteStore } from "../../src/keystore/sqlite/sqlite-store.js";
import { withRawDb } from "../support/raw-sqlite.js";
import { makeAuditEntry, P1, P2, TEST_CHAIN_KEY } from "./fixtures.js";
import { formatOneTrail, formatOneValues } from "./format-one.js";

const P3 = "project-3";
const ALL = 1000;

const entry = (time: number, projectId: string) => makeAuditEntry({ time, projectId });

/**
 * Five appends (seqs 1-3, 4, 5-9, 10-11, 12-15): times out of order, rows
 * that mix projects, and a project (P3) only in some rows.
 */
const BATCHES: readonly (readonly [number, string][])[] = [
  [
    [50, P1],
    [10, P2],
    [30, P1],
  ],
  [[70, P2]],
  [
    [20, P1],
    [20, P3],
    [90, P2],
    [15, P1],
    [60, P1],
  ],
  [
    [5, P3],
    [40, P3],
  ],
  [
    [80, P1],
    [35, P2],
    [100, P1],
    [25, P2],
  ],
];
/** Each append's seqs, first and last. */
const RANGES = [
  [1, 3],
  [4, 4],
  [5, 9],
  [10, 11],
  [12, 15],
] as const;

/** Appends each batch as kmsd does (format 2, the last record sealed); returns what was appended. */
async function appendBatches(
  store: AuditStore,
  batches: readonly (readonly [number, string][])[] = BATCHES,
): Promise<StoredAuditRecord[]> {
  const appended: StoredAuditRecord[] = [];
  for (const batch of batches) {
    const build = sealEntries(
      TEST_CHAIN_KEY,
      batch.map(([time, projectId]) => entry(time, projectId)),
    );
    await store.appendAudit((head) => {
      const records = build(head);
      appended.push(...records);
      return records;
    });
  }
  return appended;
}

/** The first break in the records (finish() included), and how many verified. */
function verify(records: readonly StoredAuditRecord[]): {
  broken: ChainBreak | undefined;
  verified: number;
} {
  const verifier = new ChainVerifier(TEST_CHAIN_KEY);
  for (const record of records) {
    const broken = verifier.check(record);
    if (broken !== undefined) return { broken, verified: verifier.verified };
  }
  return { broken: verifier.finish(), verified: verifier.verified };
}

/** What readAudit must answer, computed from the whole trail. */
function bruteForce(all: readonly StoredAuditRecord[], query: AuditQuery): StoredAuditRecord[] {
  return all
    .filter(
      (record) =>
        record.seq > (query.afterSeq ?? 0) &&
        (query.projectId === undefined || record.projectId === query.projectId) &&
        (query.since === undefined || record.time >= query.since),
    )
    .slice(0, query.limit);
}

function appendRows(path: string): AuditAppendRow[] {
  return withRawDb(path, (db) =>
    db
      .prepare<[], AuditAppendRow>(
        `SELECT last_seq, first_seq, time_bound, format, records, seal
          FROM audit_appends ORDER BY last_seq`,
      )
      .all(),
  );
}

function projectPairs(path: string): [string, number][] {
  return withRawDb(path, (db) =>
    db
      .prepare<[], { project_id: string; last_seq: number }>(
        "SELECT project_id, last_seq FROM audit_append_projects ORDER BY project_id, last_seq",
      )
      .all()
      .map((r): [string, number] => [r.project_id, r.last_seq]),
  );
}

/** The (project, last_seq) pairs the project index must hold for these rows of these records. */
function expectedPairs(
  records: readonly StoredAuditRecord[],
  rows: readonly { first_seq: number; last_seq: number }[],
): [string, number][] {
  const pairs = new Set<string>();
  for (const record of records) {
    const row = rows.find((r) => r.first_seq <= record.seq && record.seq <= r.last_seq);
    if (row === undefined) throw new Error(`no row holds record ${record.seq}`);
    pairs.add(JSON.stringify([record.projectId, row.last_seq]));
  }
  return [...pairs]
    .map((pair) => JSON.parse(pair) as [string, number])
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x - y));
}

/** A row of audit_records at schema version 5. */
interface V5Row {
  seq: number;
  time: number;
  time_bound: number;
  project_id: string;
  record: string;
  seal: string | null;
  format: number;
}

function insertV5(db: BetterSqlite3.Database, rows: readonly V5Row[]): void {
  const insert = db.prepare<[V5Row]>(
    `INSERT INTO audit_records (seq, time, time_bound, project_id, record, seal, format)
      VALUES (@seq, @time, @time_bound, @project_id, @record, @seal, @format)`,
  );
  for (const row of rows) insert.run(row);
}

/** What audit_records holds at version 5, as the store's records. */
function readV5(db: BetterSqlite3.Database): StoredAuditRecord[] {
  return db
    .prepare<[], V5Row>("SELECT * FROM audit_records ORDER BY seq")
    .all()
    .map((row) => ({
      seq: row.seq,
      time: row.time,
      projectId: row.project_id,
      text: row.record,
      seal: row.seal ?? undefined,
      format: row.format as 1 | 2,
    }));
}

/** Format 2 records as rows at version 5, each with the running time bound from `bound`. */
function v5Rows(records: readonly StoredAuditRecord[], bound: number): V5Row[] {
  let timeBound = bound;
  return records.map((record) => {
    timeBound = Math.max(timeBound, record.time);
    return {
      seq: record.seq,
      time: record.time,
      time_bound: timeBound,
      project_id: record.projectId,
      record: record.text,
      seal: record.seal ?? null,
      format: record.format,
    };
  });
}

function kept(record: StoredAuditRecord) {
  return { seq: record.seq, text: record.text, seal: record.seal, format: record.format };
}

describe("SQLite audit trail stored one row per append", () => {
  let dir: string;
  const open: SqliteStore[] = [];

  async function openStore(): Promise<SqliteStore> {
    const store = await openSqliteStore({ dataDir: dir });
    open.push(store);
    return store;
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "kmsd-audit-layout-"));
  });

  afterEach(async () => {
    for (const store of open.splice(0)) await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  describe("reads", () => {
    it("give back every record appended, in seq order, and the chain verifies", async () => {
      const store = await openStore();
      const appended = await appendBatches(store);

      const all = await store.readAudit({ limit: ALL });

      expect(all).toEqual(appended);
      expect(all.map((r) => r.seq)).toEqual(appended.map((_, i) => i + 1));
      expect(verify(all)).toEqual({ broken: undefined, verified: 15 });
      expect(await store.auditHead()).toEqual({ seq: 15, seal: appended[14]?.seal });
    });

    it("start inside a row when afterSeq falls in one", async () => {
      const store = await openStore();
      const all = await appendBatches(store);

      for (let afterSeq = 0; afterSeq <= 16; afterSeq++) {
        expect(await store.readAudit({ afterSeq, limit: ALL })).toEqual(all.slice(afterSeq));
        expect(await store.readAudit({ afterSeq, limit: 2 })).toEqual(
          all.slice(afterSeq, afterSeq + 2),
        );
      }
    });

    it("end a page inside a row at the limit, and continue from the last seq returned", async () => {
      const store = await openStore();
      const all = await appendBatches(store);

      // Records 1-3 are one row: a page of 2 ends inside it.
      const first = await store.readAudit({ limit: 2 });
      expect(first).toEqual(all.slice(0, 2));
      expect(await store.readAudit({ afterSeq: 2, limit: 2 })).toEqual(all.slice(2, 4));

      for (let limit = 1; limit <= 16; limit++) {
        const pages: StoredAuditRecord[][] = [];
        let afterSeq = 0;
        for (;;) {
          const page = await store.readAudit({ afterSeq, limit });
          if (page.length === 0) break;
          expect(page).toEqual(all.slice(afterSeq, afterSeq + limit));
          pages.push(page);
          afterSeq = (page.at(-1) as StoredAuditRecord).seq;
        }
        expect(pages.flat()).toEqual(all);
        expect(pages).toHaveLength(Math.ceil(all.length / limit));
      }
    });

    it("by project give only its records, in seq order, across rows that mix projects", async () => {
      const store = await openStore();
      const all = await appendBatches(store);
      // The point of the test: rows holding records of several projects.
      const projectsOfRow = new Map<number, Set<string>>();
      for (const [project, lastSeq] of projectPairs(store.path)) {
        projectsOfRow.set(lastSeq, (projectsOfRow.get(lastSeq) ?? new Set()).add(project));
      }
      expect([...projectsOfRow.values()].filter((projects) => projects.size > 1)).toHaveLength(3);

      for (const projectId of [P1, P2, P3, "no-such-project", ""]) {
        const mine = all.filter((r) => r.projectId === projectId);
        expect(await store.readAudit({ projectId, limit: ALL })).toEqual(mine);
        for (let afterSeq = 0; afterSeq <= 15; afterSeq++) {
          for (const limit of [1, 2, 3, ALL]) {
            expect(await store.readAudit({ projectId, afterSeq, limit })).toEqual(
              bruteForce(all, { projectId, afterSeq, limit }),
            );
          }
        }
      }
      expect((await store.readAudit({ projectId: P3, limit: ALL })).map((r) => r.seq)).toEqual([
        6, 10, 11,
      ]);
    });

    it("since a time give what a filter of the whole trail gives, with afterSeq and project too", async () => {
      const store = await openStore();
      const all = await appendBatches(store);
      const times = [...new Set(all.map((r) => r.time))];
      const sinces = [
        Number.MIN_SAFE_INTEGER,
        0,
        ...times.flatMap((t) => [t - 1, t, t + 1]),
        Number.MAX_SAFE_INTEGER,
      ];

      for (const since of sinces) {
        for (const projectId of [undefined, P1, P2, P3]) {
          for (const afterSeq of [undefined, 0, 2, 4, 6, 9, 10, 13, 15]) {
            for (const limit of [1, 2, ALL]) {
              const query = { since, projectId, afterSeq, limit };
              expect(await store.readAudit(query), JSON.stringify(query)).toEqual(
                bruteForce(all, query),
              );
            }
          }
        }
      }
      expect((await store.readAudit({ since: 85, limit: ALL })).map((r) => r.seq)).toEqual([7, 14]);
    });

    it("refuse a limit that is not a positive integer, as before", async () => {
      const store = await openStore();
      for (const limit of [0, -1, 2.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
        await expect(store.readAudit({ limit })).rejects.toThrow(RangeError);
        await expect(store.readAudit({ limit })).rejects.toThrow(
          `limit must be a positive integer, got ${limit}`,
        );
      }
      const all = await appendBatches(store);
      for (const limit of [0, -1, 2.5, Number.NaN]) {
        await expect(
          store.readAudit({ projectId: P1, since: 10, afterSeq: 2, limit }),
        ).rejects.toThrow(RangeError);
      }
      expect(await store.readAudit({ limit: 1 })).toEqual(all.slice(0, 1));
      expect(await store.readAudit({ limit: Number.MAX_SAFE_INTEGER })).toEqual(all);
    });
  });

  describe("tables", () => {
    it("hold one audit_appends row per append, and the project index its (project, row) pairs", async () => {
      const store = await openStore();
      const all = await appendBatches(store);
      // An empty append writes no row.
      await store.appendAudit(() => []);

      const rows = appendRows(store.path);

      expect(rows).toEqual(
        RANGES.map(([first, last]) => {
          const run = all.slice(first - 1, last);
          return {
            last_seq: last,
            first_seq: first,
            time_bound: Math.max(...all.slice(0, last).map((r) => r.time)),
            format: 2,
            records: run.map((r) => r.text).join("\n"),
            seal: run.at(-1)?.seal,
          };
        }),
      );
      expect(projectPairs(store.path)).toEqual(expectedPairs(all, rows));
      expect(projectPairs(store.path)).toHaveLength(9);
    });

    it("are searched, not scanned, by a read of one project", async () => {
      const store = await openStore();
      const all = await appendBatches(store);

      const db = openSqliteDatabase(store.path, { fileMustExist: true });
      try {
        // The statements the store reads with: an AuditTable on this connection prepares them.
        const prepare = db.prepare.bind(db);
        const sources: string[] = [];
        db.prepare = ((source: string) => {
          sources.push(source);
          return prepare(source);
        }) as typeof db.prepare;
        const table = new AuditTable(db);
        const byProject = sources.filter((s) => /FROM audit_append_projects JOIN/.test(s));
        expect(byProject).toHaveLength(1);

        const plan = prepare(`EXPLAIN QUERY PLAN ${byProject[0]}`)
          .all(P2, 3)
          .map((step) => (step as { detail: string }).detail)
          .join("\n");
        expect(plan).toMatch(/SEARCH audit_append_projects USING PRIMARY KEY \(project_id=\?/);
        expect(plan).toMatch(/SEARCH audit_appends USING INTEGER PRIMARY KEY/);
        expect(plan).not.toMatch(/SCAN/);
        // ...and it is the statement behind a read by project.
        expect(await table.read({ projectId: P2, afterSeq: 3, limit: ALL })).toEqual(
          bruteForce(all, { projectId: P2, afterSeq: 3, limit: ALL }),
        );
      } finally {
        db.close();
      }
    });
  });

  describe("the query aids verify checks", () => {
    it("hold for a trail the store wrote, and name the first record a changed index or bound hides", async () => {
      const store = await openStore();
      await appendBatches(store, BATCHES);
      expect(await store.auditIndexProblem()).toBeUndefined();

      // Row 5-9 holds P1 at 5, 8 and 9: without its index entry, 5 is the first hidden.
      withRawDb(store.path, (db) =>
        db
          .prepare("DELETE FROM audit_append_projects WHERE project_id = ? AND last_seq = 9")
          .run(P1),
      );
      expect(await store.auditIndexProblem()).toEqual({
        seq: 5,
        problem: expect.stringMatching(/project index does not list record 5's project/),
      });
      withRawDb(store.path, (db) =>
        db
          .prepare("INSERT INTO audit_append_projects (project_id, last_seq) VALUES (?, 9)")
          .run(P1),
      );
      expect(await store.auditIndexProblem()).toBeUndefined();

      // Rows 1-3 and 4 reach time 70; a bound of 69 on row 4 hides record 4 from --since 70.
      withRawDb(store.path, (db) =>
        db.prepare("UPDATE audit_appends SET time_bound = 69 WHERE last_seq = 4").run(),
      );
      expect(await store.readAudit({ since: 70, limit: ALL })).not.toContainEqual(
        expect.objectContaining({ seq: 4 }),
      );
      expect(await store.auditIndexProblem()).toEqual({
        seq: 4,
        problem: expect.stringMatching(/time bound stored for the records up to 4 \(69\) is below/),
      });
      // A higher bound only makes reads start earlier: no problem.
      withRawDb(store.path, (db) =>
        db.prepare("UPDATE audit_appends SET time_bound = 1000 WHERE last_seq = 4").run(),
      );
      expect(await store.auditIndexProblem()).toBeUndefined();
    });
  });

  describe("migration 6", () => {
    /** Builds the store file at schema version 5, running `fill` on it. */
    function atVersion5(fill: (db: BetterSqlite3.Database) => void, from: 4 | 5 = 5): void {
      const db = openSqliteDatabase(join(dir, "kmsd.db"));
      try {
        db.pragma("journal_mode = WAL");
        migrate(db, MIGRATIONS.slice(0, 4));
        if (from === 5) {
          expect(migrate(db, MIGRATIONS.slice(0, 5))).toEqual([5]);
          fill(db);
        } else {
          fill(db);
          expect(migrate(db, MIGRATIONS.slice(0, 5))).toEqual([5]);
        }
      } finally {
        db.close();
      }
    }

    /**
     * A trail at version 5: format 1 records (each sealed), format 2
     * appends (the last record sealed), a gap (10, 11), a format change
     * with no seal before it (15 to 16), and an unsealed tail (17-19).
     * Seals are stand-ins: what is checked here is that they are kept.
     */
    function mixedTrail(): V5Row[] {
      const spec: [number, 1 | 2, boolean, number, string][] = [
        [1, 1, true, 50, P1],
        [2, 1, true, 10, P2],
        [3, 1, true, 30, P1],
        [4, 2, false, 70, P2],
        [5, 2, false, 20, P1],
        [6, 2, true, 60, P1],
        [7, 2, true, 15, P3],
        [8, 2, false, 40, P1],
        [9, 2, true, 35, P2],
        [12, 2, false, 80, P3],
        [13, 2, true, 25, P3],
        [14, 2, false, 45, P1],
        [15, 2, false, 5, P2],
        [16, 1, true, 55, P1],
        [17, 2, false, 65, P2],
        [18, 2, false, 12, P1],
        [19, 2, false, 90, P3],
      ];
      let timeBound = Number.MIN_SAFE_INTEGER;
      return spec.map(([seq, format, sealed, time, projectId]) => {
        timeBound = Math.max(timeBound, time);
        return {
          seq,
          time,
          time_bound: timeBound,
          project_id: projectId,
          record: auditText(entry(time, projectId)),
          seal: sealed ? createHash("sha256").update(`seal ${seq}`).digest("hex") : null,
          format,
        };
      });
    }

    it("keeps every record, seal and format, grouped the way appends pack them", async () => {
      let before: StoredAuditRecord[] = [];
      atVersion5((db) => {
        insertV5(db, mixedTrail());
        before = readV5(db);
      });
      expect(before).toHaveLength(17);

      const store = await openStore();

      const after = await store.readAudit({ limit: ALL });
      expect(after.map(kept)).toEqual(before.map(kept));
      expect(after).toEqual(before);
      expect(await store.auditHead()).toEqual({ seq: 19, seal: undefined });
      withRawDb(store.path, (db) => {
        const tables = db
          .prepare("SELECT name FROM sqlite_master WHERE name LIKE 'audit%' ORDER BY name")
          .pluck()
          .all();
        // audit_records is gone, and its index with it.
        expect(tables).toEqual(["audit_append_projects", "audit_appends"]);
        expect(db.prepare("SELECT max(version) FROM schema_migrations").pluck().get()).toBe(6);
      });
      const rows = appendRows(store.path);
      expect(rows.map((r) => [r.first_seq, r.last_seq])).toEqual([
        [1, 1],
        [2, 2],
        [3, 3],
        [4, 6],
        [7, 7],
        [8, 9],
        [12, 13],
        [14, 15],
        [16, 16],
        [17, 19],
      ]);
      // The same rows, time bounds and project index as packing the records would make.
      const packed = packAuditRecords(before, Number.MIN_SAFE_INTEGER);
      expect(rows).toEqual(packed.map((p) => p.row));
      expect(projectPairs(store.path)).toEqual(expectedPairs(before, rows));
      expect(projectPairs(store.path)).toEqual(
        packed
          .flatMap(({ row, projects }) =>
            [...projects].map((p): [string, number] => [p, row.last_seq]),
          )
          .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x - y)),
      );

      // Reads over the migrated rows: project, since and afterSeq as before.
      for (const projectId of [undefined, P1, P2, P3]) {
        for (const since of [undefined, 5, 26, 46, 66, 85, 90, 91]) {
          for (const afterSeq of [0, 5, 9, 10, 12, 18]) {
            for (const limit of [1, 2, ALL]) {
              const query = { projectId, since, afterSeq, limit };
              expect(await store.readAudit(query), JSON.stringify(query)).toEqual(
                bruteForce(before, query),
              );
            }
          }
        }
      }
    });

    it("migrates an empty trail to empty tables", async () => {
      atVersion5(() => {});
      const store = await openStore();
      expect(await store.readAudit({ limit: ALL })).toEqual([]);
      expect(await store.auditHead()).toBeUndefined();
      expect(appendRows(store.path)).toEqual([]);
      expect(projectPairs(store.path)).toEqual([]);
    });

    /**
     * A trail kmsd wrote: five format 1 records (written at version 4,
     * turned into format 1 by migration 5), then three format 2 appends
     * sealed on from them (seqs 6-8, 9, 10-13). Returns the version 5 rows'
     * records.
     */
    function sealedTrail(tamper: (db: BetterSqlite3.Database) => void = () => {}): {
      before: StoredAuditRecord[];
      v5Break: ChainBreak | undefined;
    } {
      const trail = formatOneTrail();
      let before: StoredAuditRecord[] = [];
      let v5Break: ChainBreak | undefined;
      atVersion5((db) => {
        const insert = db.prepare(
          `INSERT INTO audit_records (seq, time, request_id, protocol, project_id, principal,
            operation, key_id, sequence, outcome, latency_us, context, prev_hash, hash)
            VALUES (${Array.from({ length: 14 }, () => "?").join(", ")})`,
        );
        for (const row of trail) insert.run(...formatOneValues(row));
      }, 4);
      withRawDb(join(dir, "kmsd.db"), (db) => {
        const formatOne = readV5(db);
        let head: AuditHead = { seq: 5, seal: formatOne.at(-1)?.seal };
        let bound = Math.max(...formatOne.map((r) => r.time));
        for (const batch of [
          [entry(40, P1), entry(5, P2), entry(60, P1)],
          [entry(45, P2)],
          [entry(1, P1), entry(80, P1), entry(3, P2), entry(2, P1)],
        ]) {
          const records = sealEntries(TEST_CHAIN_KEY, batch)(head);
          insertV5(db, v5Rows(records, bound));
          bound = Math.max(bound, ...records.map((r) => r.time));
          const last = records.at(-1) as StoredAuditRecord;
          head = { seq: last.seq, seal: last.seal };
        }
        tamper(db);
        before = readV5(db);
        v5Break = verify(before).broken;
      });
      return { before, v5Break };
    }

    it("keeps a trail kmsd sealed verifiable, and appends seal on from it", async () => {
      const { before, v5Break } = sealedTrail();
      expect(v5Break).toBeUndefined();
      expect(before.map((r) => r.format)).toEqual([1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2]);

      const store = await openStore();

      const after = await store.readAudit({ limit: ALL });
      expect(after).toEqual(before);
      expect(verify(after)).toEqual({ broken: undefined, verified: 13 });
      expect(appendRows(store.path).map((r) => [r.first_seq, r.last_seq])).toEqual([
        [1, 1],
        [2, 2],
        [3, 3],
        [4, 4],
        [5, 5],
        [6, 8],
        [9, 9],
        [10, 13],
      ]);
      const appended = await appendBatches(store, [
        [[30, P2]],
        [
          [10, P1],
          [99, P1],
        ],
      ]);
      expect(appended.map((r) => r.seq)).toEqual([14, 15, 16]);
      const all = await store.readAudit({ limit: ALL });
      expect(all).toEqual([...before, ...appended]);
      expect(verify(all)).toEqual({ broken: undefined, verified: 16 });
    });

    const tampers: [string, (db: BetterSqlite3.Database) => void, ChainBreak][] = [
      [
        "a changed text inside an append",
        (db) => {
          const text = db.prepare("SELECT record FROM audit_records WHERE seq = 7").pluck().get();
          const changed = String(text).replace('"requestId":"req-', '"requestId":"bad-');
          expect(changed).not.toBe(text);
          db.prepare("UPDATE audit_records SET record = ? WHERE seq = 7").run(changed);
        },
        { seq: 6, reason: "seal", lastSeq: 8 },
      ],
      [
        "a record deleted inside an append",
        (db) => db.exec("DELETE FROM audit_records WHERE seq = 11"),
        { seq: 12, reason: "gap", expectedSeq: 11 },
      ],
      [
        "the sealed last record deleted",
        (db) => db.exec("DELETE FROM audit_records WHERE seq = 13"),
        { seq: 10, reason: "unsealed" },
      ],
      [
        "a seal removed inside the trail",
        (db) => db.exec("UPDATE audit_records SET seal = NULL WHERE seq = 9"),
        { seq: 9, reason: "seal", lastSeq: 13 },
      ],
      [
        "a changed format 1 record",
        (db) => db.exec("UPDATE audit_records SET seal = upper(seal) WHERE seq = 3"),
        { seq: 3, reason: "hash" },
      ],
    ];

    it.each(tampers)("still reports %s at the same record", async (_, tamper, expected) => {
      const { before, v5Break } = sealedTrail(tamper);
      expect(v5Break).toEqual(expected);

      const store = await openStore();

      const after = await store.readAudit({ limit: ALL });
      expect(after).toEqual(before);
      expect(verify(after).broken).toEqual(expected);
    });

    it("keeps a text edited to hold a raw newline one record, still failing its seal", async () => {
      const expected: ChainBreak = { seq: 6, reason: "seal", lastSeq: 8 };
      const { before, v5Break } = sealedTrail((db) => {
        const text = String(
          db.prepare("SELECT record FROM audit_records WHERE seq = 7").pluck().get(),
        );
        db.prepare("UPDATE audit_records SET record = ? WHERE seq = 7").run(
          text.replace(',"protocol"', ',\n"protocol"'),
        );
      });
      expect(before[6]?.text).toContain("\n");
      expect(v5Break).toEqual(expected);

      const store = await openStore();

      const after = await store.readAudit({ limit: ALL });
      expect(after.map((r) => r.seq)).toEqual(before.map((r) => r.seq));
      expect(after[6]?.text).toBe(before[6]?.text.replace("\n", " "));
      expect(verify(after).broken).toEqual(expected);
    });
  });
});
