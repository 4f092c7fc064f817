import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type BetterSqlite3 from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openSqliteDatabase } from "../../src/keystore/sqlite/driver.js";
import { MIGRATIONS, migrate, SchemaVersionError } from "../../src/keystore/sqlite/migrations.js";
import {
  connectionsForTesting,
  openSqliteStore,
  type SqliteStore,
} from "../../src/keystore/sqlite/sqlite-store.js";
import { AliasTakenError, type KeyRecord, KeyState } from "../../src/keystore/types.js";
import { withRawDb } from "../support/raw-sqlite.js";
import { expectUnbrokenChain, requestIds } from "./chain-check.js";
import { describeStoreContract } from "./contract.js";
import {
  makeAuditEntry,
  makeCredential,
  makeKey,
  makeNextVersion,
  makeVersion,
  testAppend,
} from "./fixtures.js";
import { expectMigratedTrail, formatOneTrail, formatOneValues } from "./format-one.js";
import { describeRewrapContract } from "./rewrap-contract.js";

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), "kmsd-keystore-"));
}

let contractDir: string | undefined;
describeStoreContract(
  "sqlite",
  async () => {
    contractDir = await tempDir();
    return openSqliteStore({ dataDir: contractDir });
  },
  async () => {
    if (contractDir !== undefined) await rm(contractDir, { recursive: true, force: true });
    contractDir = undefined;
  },
);

let rewrapDir: string | undefined;
describeRewrapContract(
  "sqlite",
  async () => {
    rewrapDir = await tempDir();
    return openSqliteStore({ dataDir: rewrapDir });
  },
  async () => {
    if (rewrapDir !== undefined) await rm(rewrapDir, { recursive: true, force: true });
    rewrapDir = undefined;
  },
);

interface MigrationRow {
  version: number;
  description: string;
  applied_at: number;
}

function migrationRows(path: string): MigrationRow[] {
  return withRawDb(path, (db) =>
    db
      .prepare<[], MigrationRow>(
        "SELECT version, description, applied_at FROM schema_migrations ORDER BY version",
      )
      .all(),
  );
}

/** Writes a key as kmsd did at schema version 1, change row included. */
function insertVersion1Key(db: BetterSqlite3.Database, key: KeyRecord): void {
  db.prepare(
    `INSERT INTO keys (key_id, project_id, alias, description, key_spec, key_usage, origin,
      enterprise_project_id, state, created_at, deletion_at, primary_version)
      VALUES (@keyId, @projectId, @alias, @description, @keySpec, @keyUsage, @origin,
      @enterpriseProjectId, @state, @createdAt, @deletionAt, @primaryVersion)`,
  ).run(key);
  const version = makeVersion(key);
  db.prepare(
    `INSERT INTO key_versions (key_id, version, wrapped_material, root_key_id, created_at)
      VALUES (?, ?, ?, ?, ?)`,
  ).run(key.keyId, version.version, version.wrappedMaterial, version.rootKeyId, version.createdAt);
  db.prepare("INSERT INTO key_changes (project_id, key_id, changed_at) VALUES (?, ?, ?)").run(
    key.projectId,
    key.keyId,
    key.createdAt,
  );
}

/** Each index of the table, with its columns in order. */
function indexColumns(db: BetterSqlite3.Database, table: string): Record<string, string[]> {
  const indexes = db
    .prepare<[string], string>(
      "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
    )
    .pluck()
    .all(table);
  return Object.fromEntries(
    indexes.map((name) => [
      name,
      db
        .prepare<[string], string>("SELECT name FROM pragma_index_info(?) ORDER BY seqno")
        .pluck()
        .all(name),
    ]),
  );
}

describe("SQLite key store", () => {
  let dir: string;
  const open: SqliteStore[] = [];

  async function openStore(): Promise<SqliteStore> {
    const store = await openSqliteStore({ dataDir: dir });
    open.push(store);
    return store;
  }

  beforeEach(async () => {
    dir = await tempDir();
  });

  afterEach(async () => {
    for (const store of open.splice(0)) await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  describe("file", () => {
    it("creates the data directory owner-only, with the default or given file name", async () => {
      const dataDir = join(dir, "nested", "data");
      const store = await openSqliteStore({ dataDir });
      open.push(store);
      const named = await openSqliteStore({ dataDir, fileName: "other.db" });
      open.push(named);

      expect(store.path).toBe(join(dataDir, "kmsd.db"));
      expect(named.path).toBe(join(dataDir, "other.db"));
      expect((await stat(dataDir)).mode & 0o777).toBe(0o700);
      expect((await stat(store.path)).isFile()).toBe(true);
    });

    it("is in WAL mode", async () => {
      const store = await openStore();
      const mode = withRawDb(store.path, (db) => db.pragma("journal_mode", { simple: true }));
      expect(mode).toBe("wal");
    });

    it("syncs key writes fully but audit appends only at checkpoints (NORMAL)", async () => {
      const store = await openStore();
      const { main, audit } = connectionsForTesting(store);

      expect(main).not.toBe(audit);
      expect(main.name).toBe(store.path);
      expect(audit.name).toBe(store.path);
      expect(main.pragma("synchronous", { simple: true })).toBe(2);
      expect(audit.pragma("synchronous", { simple: true })).toBe(1);
      expect(audit.pragma("busy_timeout", { simple: true })).toBe(
        main.pragma("busy_timeout", { simple: true }),
      );
    });

    it("closes both connections", async () => {
      const store = await openStore();
      const { main, audit } = connectionsForTesting(store);
      await store.close();
      expect([main.open, audit.open]).toEqual([false, false]);
    });

    it("checkpoints the WAL on a worker thread when serving, and stops it on close", async () => {
      const sizeAfterAppends = async (store: SqliteStore) => {
        const before = (await stat(store.path)).size;
        for (let i = 0; i < 20; i++) {
          const entries = Array.from({ length: 100 }, () => makeAuditEntry());
          await store.appendAudit(testAppend(entries));
        }
        // Longer than the checkpoint interval (200 ms), well short of a
        // commit reaching any autocheckpoint threshold (2000 records ~ 200 pages).
        await new Promise((resolve) => setTimeout(resolve, 600));
        return { before, after: (await stat(store.path)).size };
      };
      const inline = await openSqliteStore({ dataDir: join(dir, "inline") });
      open.push(inline);
      const serving = await openSqliteStore({
        dataDir: join(dir, "serving"),
        backgroundCheckpoints: true,
      });

      const { main, audit } = connectionsForTesting(serving);
      expect([main, audit].map((c) => c.pragma("wal_autocheckpoint", { simple: true }))).toEqual([
        10_000, 10_000,
      ]);
      // Without the worker the appended pages are still only in the WAL...
      const unchanged = await sizeAfterAppends(inline);
      expect(unchanged.after).toBe(unchanged.before);
      // ...with it, they reach the database file without any commit checkpointing.
      const grown = await sizeAfterAppends(serving);
      expect(grown.after).toBeGreaterThan(grown.before + 100_000);

      // close() waits for the worker's last checkpoint and exit: a worker
      // left running would hang it past the test's timeout.
      await serving.close();
      expect(await serving.readAudit({ limit: 1 }).catch((e) => e)).toBeInstanceOf(Error);
    });

    it("refuses, in the test-only helper, a store it did not open", () => {
      const impostor = { path: "x" } as unknown as SqliteStore;
      expect(() => connectionsForTesting(impostor)).toThrow(TypeError);
    });
  });

  describe("migrations", () => {
    it("are numbered 1, 2, 3, ... in order", () => {
      expect(MIGRATIONS.map((m) => m.version)).toEqual(MIGRATIONS.map((_, i) => i + 1));
    });

    it("are recorded when a store is created", async () => {
      const before = Date.now();
      const store = await openStore();
      const rows = migrationRows(store.path);

      expect(rows.map((r) => [r.version, r.description])).toEqual(
        MIGRATIONS.map((m) => [m.version, m.description]),
      );
      for (const row of rows) {
        expect(row.applied_at).toBeGreaterThanOrEqual(before);
        expect(row.applied_at).toBeLessThanOrEqual(Date.now());
      }
    });

    it("are not re-run when an existing file is reopened, and data is kept", async () => {
      const first = await openStore();
      const key = makeKey();
      await first.createKey(key, makeVersion(key));
      await first.setMeta("root_check", "abc");
      await first.close();
      withRawDb(first.path, (db) => db.exec("UPDATE schema_migrations SET applied_at = 1"));

      const second = await openStore();

      expect(migrationRows(second.path).map((r) => r.applied_at)).toEqual(MIGRATIONS.map(() => 1));
      expect(await second.getKey(key.projectId, key.keyId)).toEqual(key);
      expect(await second.getKeyVersion(key.keyId, 1)).toEqual(makeVersion(key));
      expect(await second.getMeta("root_check")).toBe("abc");
    });

    it("refuse a file from a newer kmsd without touching it", async () => {
      const store = await openStore();
      await store.close();
      const latest = MIGRATIONS.length;
      const future = latest + 1;
      withRawDb(store.path, (db) => {
        db.prepare("INSERT INTO schema_migrations VALUES (?, 'from the future', 42)").run(future);
        // Out of WAL mode, so that even switching the journal mode would show.
        db.pragma("journal_mode = DELETE");
      });
      const bytes = await readFile(store.path);
      const { mtimeMs } = await stat(store.path);

      const error = await openSqliteStore({ dataDir: dir }).catch((e) => e);

      expect(error).toBeInstanceOf(SchemaVersionError);
      expect(error).toMatchObject({ storeVersion: future, codeVersion: latest });
      expect(String(error.message)).toContain(`version ${future}`);
      expect(String(error.message)).toContain(`(${latest})`);
      expect((await readFile(store.path)).equals(bytes)).toBe(true);
      expect((await stat(store.path)).mtimeMs).toBe(mtimeMs);
      expect(migrationRows(store.path).map((r) => r.version)).toEqual([
        ...MIGRATIONS.map((m) => m.version),
        future,
      ]);
    });

    it("2 upgrades a store created at 1, keeping its keys and marking their changes 'key'", async () => {
      const path = join(dir, "kmsd.db");
      const key = makeKey();
      const db = openSqliteDatabase(path);
      try {
        db.pragma("journal_mode = WAL");
        expect(migrate(db, MIGRATIONS.slice(0, 1))).toEqual([1]);
        insertVersion1Key(db, key);
      } finally {
        db.close();
      }

      const store = await openStore();

      expect(migrationRows(store.path).map((r) => r.version)).toEqual(
        MIGRATIONS.map((m) => m.version),
      );
      expect(await store.getKey(key.projectId, key.keyId)).toEqual(key);
      expect(await store.getKeyVersion(key.keyId, 1)).toEqual(makeVersion(key));
      expect(await store.changesSince(0)).toEqual([
        { seq: 1, kind: "key", projectId: key.projectId, keyId: key.keyId },
      ]);
      const credential = makeCredential();
      await store.createCredential(credential);
      expect(await store.changesSince(1)).toEqual([
        {
          seq: 2,
          kind: "credential",
          projectId: credential.projectId,
          keyId: credential.accessKey,
        },
      ]);
      await store.appendAudit(testAppend([makeAuditEntry()]));
      expect((await store.auditHead())?.seq).toBe(1);
    });

    it("2 indexes credentials and tokens for their queries", async () => {
      const store = await openStore();
      withRawDb(store.path, (db) => {
        expect(indexColumns(db, "credentials")).toMatchObject({
          credentials_project_created: ["project_id", "created_at", "access_key"],
        });
        expect(indexColumns(db, "tokens")).toEqual({
          tokens_project_created: ["project_id", "created_at", "token_id"],
        });
      });
    });

    it("2 keeps a token hash unique, and constrains roles and states", async () => {
      const store = await openStore();
      withRawDb(store.path, (db) => {
        const insertToken = db.prepare(
          `INSERT INTO tokens (token_id, token_hash, project_id, role, created_at, expires_at,
            description) VALUES (?, ?, 'p', ?, 1, 2, '')`,
        );
        insertToken.run("t1", "h", "admin");
        expect(() => insertToken.run("t2", "h", "user")).toThrow(/UNIQUE/);
        expect(() => insertToken.run("t3", "h3", "root")).toThrow(/CHECK/);

        const insertCredential = db.prepare(
          `INSERT INTO credentials (access_key, project_id, role, wrapped_secret, root_key_id,
            state, created_at, description) VALUES (?, 'p', ?, x'00', 'r', ?, 1, '')`,
        );
        insertCredential.run("AK1", "user", "enabled");
        expect(() => insertCredential.run("AK2", "owner", "enabled")).toThrow(/CHECK/);
        expect(() => insertCredential.run("AK3", "user", "2")).toThrow(/CHECK/);
      });
    });

    it("3 upgrades a store created at 2: existing keys get rotation off, 365 days, never rotated", async () => {
      const path = join(dir, "kmsd.db");
      const key = makeKey({ primaryVersion: 1 });
      const db = openSqliteDatabase(path);
      try {
        db.pragma("journal_mode = WAL");
        expect(migrate(db, MIGRATIONS.slice(0, 2))).toEqual([1, 2]);
        insertVersion1Key(db, key);
      } finally {
        db.close();
      }

      const store = await openStore();

      expect(await store.getKey(key.projectId, key.keyId)).toEqual({
        ...key,
        rotationEnabled: false,
        rotationIntervalDays: 365,
        lastRotationAt: null,
        rotationCount: 0,
        nextRotationAt: null,
      });
      const rotated = await store.rotateKey(key.projectId, key.keyId, 5, makeNextVersion);
      expect(rotated).toMatchObject({ primaryVersion: 2, rotationCount: 1, lastRotationAt: 5 });
    });

    it("3 indexes due rotations and keeps next_rotation_at set exactly while rotation is on", async () => {
      const store = await openStore();
      const key = makeKey();
      await store.createKey(key, makeVersion(key));
      withRawDb(store.path, (db) => {
        expect(indexColumns(db, "keys")).toMatchObject({
          keys_next_rotation_at: ["next_rotation_at"],
        });
        const set = (sql: string) => () =>
          db.prepare(`UPDATE keys SET ${sql} WHERE key_id = ?`).run(key.keyId);
        expect(set("rotation_enabled = 1")).toThrow(/CHECK/);
        expect(set("next_rotation_at = 5")).toThrow(/CHECK/);
        expect(set("rotation_enabled = 2, next_rotation_at = 5")).toThrow(/CHECK/);
        expect(set("rotation_interval_days = 29")).toThrow(/CHECK/);
        expect(set("rotation_interval_days = 366")).toThrow(/CHECK/);
        expect(set("rotation_count = -1")).toThrow(/CHECK/);
        set("rotation_enabled = 1, next_rotation_at = 5, rotation_interval_days = 30")();
      });
      expect(await store.getKey(key.projectId, key.keyId)).toMatchObject({
        rotationEnabled: true,
        nextRotationAt: 5,
        rotationIntervalDays: 30,
      });
    });

    it("4 indexes what each root key wraps, and a store created at 3 lists it", async () => {
      const path = join(dir, "kmsd.db");
      const key = makeKey();
      const db = openSqliteDatabase(path);
      try {
        db.pragma("journal_mode = WAL");
        expect(migrate(db, MIGRATIONS.slice(0, 3))).toEqual([1, 2, 3]);
        insertVersion1Key(db, key);
      } finally {
        db.close();
      }

      const store = await openStore();

      withRawDb(store.path, (raw) => {
        expect(indexColumns(raw, "key_versions")).toEqual({
          key_versions_root_key: ["root_key_id"],
        });
        expect(indexColumns(raw, "credentials")).toMatchObject({
          credentials_root_key: ["root_key_id"],
        });
        // The rotation's queries search the index instead of scanning the table.
        const plan = raw
          .prepare(
            `EXPLAIN QUERY PLAN SELECT * FROM key_versions
              WHERE root_key_id < 'x' OR root_key_id > 'x' LIMIT 5`,
          )
          .all() as { detail: string }[];
        expect(plan.map((step) => step.detail).join("\n")).toMatch(
          /SEARCH key_versions USING INDEX key_versions_root_key/,
        );
      });
      expect(await store.listVersionsNotWrappedBy("other", 10)).toEqual([makeVersion(key)]);
    });

    it("5 and 6 turn a trail written at 4 into format 1 records that verify, and appends seal on from them", async () => {
      const path = join(dir, "kmsd.db");
      const trail = formatOneTrail();
      const db = openSqliteDatabase(path);
      try {
        db.pragma("journal_mode = WAL");
        expect(migrate(db, MIGRATIONS.slice(0, 4))).toEqual([1, 2, 3, 4]);
        const insert = db.prepare(
          `INSERT INTO audit_records (seq, time, request_id, protocol, project_id, principal,
            operation, key_id, sequence, outcome, latency_us, context, prev_hash, hash)
            VALUES (${Array.from({ length: 14 }, () => "?").join(", ")})`,
        );
        for (const row of trail) insert.run(...formatOneValues(row));
      } finally {
        db.close();
      }

      const store = await openStore();

      await expectMigratedTrail(store, trail);
      withRawDb(store.path, (raw) => {
        const tables = raw
          .prepare<[], string>("SELECT name FROM sqlite_master WHERE name LIKE 'audit%'")
          .pluck()
          .all();
        expect(tables.sort()).toEqual(["audit_append_projects", "audit_appends"]);
        // Each format 1 record is sealed: one row each.
        const rows = raw.prepare("SELECT count(*) FROM audit_appends").pluck().get();
        expect(rows).toBe(trail.length + 1);
      });
    });

    it("6 refuses an unknown record format, a row ending before it starts, and a second row at one seq", async () => {
      const store = await openStore();
      withRawDb(store.path, (db) => {
        const insert = db.prepare(
          `INSERT INTO audit_appends (last_seq, first_seq, time_bound, format, records, seal)
            VALUES (?, ?, 1, ?, '{}', NULL)`,
        );
        insert.run(1, 1, 2);
        expect(() => insert.run(2, 2, 3)).toThrow(/CHECK/);
        expect(() => insert.run(3, 4, 2)).toThrow(/CHECK/);
        expect(() => insert.run(1, 1, 1)).toThrow(/UNIQUE|PRIMARY/);
      });
    });

    it("roll back a failing migration entirely and keep the earlier ones", () => {
      const db = openSqliteDatabase(join(dir, "scratch.db"));
      try {
        const broken = [
          ...MIGRATIONS,
          {
            version: MIGRATIONS.length + 1,
            description: "broken",
            up: "CREATE TABLE half_done (x); SELECT * FROM no_such_table;",
          },
        ];
        expect(() => migrate(db, broken)).toThrow(/no_such_table/);
        const versions = db.prepare("SELECT version FROM schema_migrations").pluck().all();
        expect(versions).toEqual(MIGRATIONS.map((m) => m.version));
        const halfDone = db
          .prepare("SELECT name FROM sqlite_master WHERE name = 'half_done'")
          .pluck()
          .get();
        expect(halfDone).toBeUndefined();
      } finally {
        db.close();
      }
    });
  });

  describe("two handles on one file", () => {
    it("see each other's keys and changes", async () => {
      const a = await openStore();
      const b = await openStore();
      const key = makeKey();

      await a.createKey(key, makeVersion(key));
      expect(await b.getKey(key.projectId, key.keyId)).toEqual(key);
      const [created] = await b.changesSince(0);
      expect(created).toEqual({
        seq: expect.any(Number),
        kind: "key",
        projectId: key.projectId,
        keyId: key.keyId,
      });

      await b.updateKey(key.projectId, key.keyId, () => ({ state: KeyState.Disabled }));
      const changes = await a.changesSince(created?.seq ?? 0);
      expect(changes.map((c) => c.keyId)).toEqual([key.keyId]);
      expect(await a.latestChangeSeq()).toBe(await b.latestChangeSeq());
      expect((await a.getKey(key.projectId, key.keyId))?.state).toBe(KeyState.Disabled);
    });

    it("lose no update when both update the same key in turn", async () => {
      const a = await openStore();
      const b = await openStore();
      const key = makeKey();
      await a.createKey(key, makeVersion(key));
      const n = 50;

      const updates = [];
      for (let i = 0; i < n; i++) {
        updates.push(a.updateKey(key.projectId, key.keyId, () => ({ description: `a${i}` })));
        updates.push(b.updateKey(key.projectId, key.keyId, () => ({ alias: `b${i}` })));
      }
      await Promise.all(updates);

      const final = await a.getKey(key.projectId, key.keyId);
      expect(final).toEqual({ ...key, description: `a${n - 1}`, alias: `b${n - 1}` });
      expect(await b.changesSince(0)).toHaveLength(1 + 2 * n);
    });

    it("append to one audit chain, each reading the head the other wrote", async () => {
      const a = await openStore();
      const b = await openStore();
      const entries = Array.from({ length: 12 }, () => makeAuditEntry());

      for (const [i, entry] of entries.entries()) {
        await (i % 3 === 0 ? a : b).appendAudit(testAppend([entry]));
      }

      const records = await a.readAudit({ limit: 100 });
      expect(requestIds(records)).toEqual(entries.map((e) => e.requestId));
      expectUnbrokenChain(records);
      expect(await b.auditHead()).toEqual({ seq: 12, seal: records.at(-1)?.seal });
    });

    it("refuse the same alias created through either handle", async () => {
      const a = await openStore();
      const b = await openStore();
      const first = makeKey({ alias: "shared" });
      const second = makeKey({ alias: "shared" });

      await a.createKey(first, makeVersion(first));
      await expect(b.createKey(second, makeVersion(second))).rejects.toBeInstanceOf(
        AliasTakenError,
      );
      expect(await a.getKey(second.projectId, second.keyId)).toBeUndefined();
    });
  });

  describe("two processes on one file", () => {
    it("append audit batches concurrently into one chain without gaps", async () => {
      const store = await openStore();
      const n = 200;

      const results = await runChildren(store, 2, { action: "audit", n });

      expect(results).toEqual([n, n]);
      const records = await store.readAudit({ limit: 10_000 });
      expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 2 * n }, (_, i) => i + 1));
      const ids = requestIds(records);
      // Unless the batches interleaved, the test proved nothing.
      const switches = ids.filter(
        (id, i) => i > 0 && id.slice(0, 7) !== ids[i - 1]?.slice(0, 7),
      ).length;
      expect(switches).toBeGreaterThan(10);
      expectUnbrokenChain(records);
      for (const child of [0, 1]) {
        const own = ids.filter((id) => id.startsWith(`child${child}-`));
        expect(own).toEqual(Array.from({ length: n }, (_, i) => `child${child}-${i}`));
      }
    }, 60_000);

    it("serialize read-modify-write: concurrent increments all count", async () => {
      const store = await openStore();
      const key = makeKey({ description: "0" });
      await store.createKey(key, makeVersion(key));
      const n = 100;

      const results = await runChildren(store, 2, { action: "increment", keyId: key.keyId, n });

      expect(results).toEqual([n, n]);
      expect((await store.getKey(key.projectId, key.keyId))?.description).toBe(String(2 * n));
    }, 60_000);

    it("rotate each due key exactly once when both sweep at the same time", async () => {
      const store = await openStore();
      const ids: string[] = [];
      for (let i = 0; i < 300; i++) {
        const key = makeKey({ rotationEnabled: true, nextRotationAt: 10 + i });
        await store.createKey(key, makeVersion(key));
        ids.push(key.keyId);
      }

      const results = await runChildren(store, 2, { action: "rotate" });

      const all = results.flatMap((r) => (Array.isArray(r) ? r : []));
      expect([...all].sort()).toEqual([...ids].sort());
      expect(new Set(all).size).toBe(ids.length);
      // Unless both children rotated some keys, the test proved nothing.
      expect(results.map((r) => (Array.isArray(r) ? r.length : 0))).not.toContain(0);
      for (const id of ids) {
        expect(await store.getKey("project-1", id)).toMatchObject({
          primaryVersion: 2,
          rotationCount: 1,
          lastRotationAt: 1000,
        });
        expect(await store.getKeyVersion(id, 3)).toBeUndefined();
      }
    }, 60_000);

    it("destroy each due key exactly once when both sweep at the same time", async () => {
      const store = await openStore();
      const ids: string[] = [];
      for (let i = 0; i < 300; i++) {
        const key = makeKey({ state: KeyState.PendingDeletion, deletionAt: 10 });
        await store.createKey(key, makeVersion(key));
        ids.push(key.keyId);
      }

      const results = await runChildren(store, 2, { action: "destroy" });

      const all = results.flatMap((r) => (Array.isArray(r) ? r : []));
      expect([...all].sort()).toEqual([...ids].sort());
      expect(new Set(all).size).toBe(ids.length);
      expect(await store.listKeys({ projectId: "project-1", limit: 10 })).toEqual({
        keys: [],
        total: 0,
      });
    }, 60_000);
  });
});

const CHILD_SCRIPT = `
const { openSqliteStore } = await import(process.env.KMSD_STORE_MODULE);
const task = JSON.parse(process.env.KMSD_TASK);
const store = await openSqliteStore({ dataDir: task.dataDir });
console.log("ready");
while ((await store.getMeta("go")) === undefined) await new Promise((r) => setTimeout(r, 2));
let result;
if (task.action === "increment") {
  for (let i = 0; i < task.n; i++) {
    await store.updateKey("project-1", task.keyId, (k) => ({
      description: String(Number(k.description) + 1),
    }));
  }
  result = task.n;
} else if (task.action === "audit") {
  const { makeAuditEntry, testAppend } = await import(process.env.KMSD_FIXTURES_MODULE);
  // Batches of 1 to 7 entries, pausing in between, so the children interleave.
  let size = 1;
  for (let i = 0; i < task.n; ) {
    const entries = [];
    for (const end = Math.min(i + size, task.n); i < end; i++) {
      entries.push(makeAuditEntry({ requestId: \`child\${task.child}-\${i}\` }));
    }
    await store.appendAudit(testAppend(entries));
    size = (size % 7) + 1;
    await new Promise((r) => setTimeout(r, 1));
  }
  result = task.n;
} else if (task.action === "rotate") {
  const { makeNextVersion } = await import(process.env.KMSD_FIXTURES_MODULE);
  // Small batches, so the children take turns at the write lock.
  result = [];
  for (;;) {
    const rotated = await store.rotateDueKeys(1000, makeNextVersion, 5);
    if (rotated.length === 0) break;
    result.push(...rotated.map((key) => key.keyId));
    await new Promise((r) => setTimeout(r, 5));
  }
} else {
  result = await store.destroyDueKeys(1000);
}
await store.close();
console.log(JSON.stringify(result));
`;

const require = createRequire(import.meta.url);
const TSX_LOADER = pathToFileURL(require.resolve("tsx")).href;
const STORE_MODULE = new URL("../../src/keystore/sqlite/sqlite-store.ts", import.meta.url).href;
const FIXTURES_MODULE = new URL("./fixtures.ts", import.meta.url).href;

/**
 * Starts `count` node processes on the store's file, releases them together
 * once all have opened it, and returns what each printed last.
 */
async function runChildren(
  store: SqliteStore,
  count: number,
  task: Record<string, unknown>,
): Promise<unknown[]> {
  const dataDir = join(store.path, "..");
  const children = Array.from({ length: count }, (_, index) => {
    const child = spawn(
      process.execPath,
      ["--import", TSX_LOADER, "--input-type=module", "-e", CHILD_SCRIPT],
      {
        env: {
          ...process.env,
          KMSD_STORE_MODULE: STORE_MODULE,
          KMSD_FIXTURES_MODULE: FIXTURES_MODULE,
          KMSD_TASK: JSON.stringify({ ...task, child: index, dataDir }),
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stdout = "";
    let stderr = "";
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    const ready = new Promise<void>((resolve) => {
      child.stdout.on("data", (chunk) => {
        stdout += chunk;
        if (stdout.startsWith("ready\n")) resolve();
      });
    });
    const done = new Promise<unknown>((resolve, reject) => {
      child.on("close", (code) => {
        const last = stdout.trim().split("\n").at(-1) ?? "";
        if (code === 0) resolve(JSON.parse(last));
        else reject(new Error(`child exited with ${code}: ${stderr}`));
      });
    });
    return { ready, done };
  });
  await Promise.race([
    Promise.all(children.map((c) => c.ready)),
    Promise.all(children.map((c) => c.done)),
  ]);
  await store.setMeta("go", "1");
  return Promise.all(children.map((c) => c.done));
}
