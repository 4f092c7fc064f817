import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { clientConfig, storeError } from "../../src/keystore/postgres/connection.js";
import { parseDatabaseUrl } from "../../src/keystore/postgres/database-url.js";
import {
  LockClass,
  migratePostgres,
  PG_MIGRATIONS,
} from "../../src/keystore/postgres/migrations.js";
import {
  openPostgresStore,
  type PostgresStore,
} from "../../src/keystore/postgres/postgres-store.js";
import { SchemaVersionError } from "../../src/keystore/schema-version-error.js";
import { StoreUnavailableError } from "../../src/keystore/store-unavailable.js";
import {
  AliasTakenError,
  type KeyChange,
  type KeyRecord,
  KeyState,
  type MakeKeyVersion,
} from "../../src/keystore/types.js";
import {
  freshSchema,
  PostgresRelay,
  TEST_DATABASE_URL,
  type TestSchema,
  terminateConnections,
  withAdminClient,
} from "../support/postgres.js";
import { eventually } from "../support/store-faults.js";
import { expectUnbrokenChain, requestIds } from "./chain-check.js";
import { describeStoreContract } from "./contract.js";
import {
  makeAuditEntry,
  makeCredential,
  makeKey,
  makeNextVersion,
  makeVersion,
  P1,
  testAppend,
} from "./fixtures.js";
import { expectMigratedTrail, formatOneTrail, formatOneValues } from "./format-one.js";
import { describeRewrapContract } from "./rewrap-contract.js";

let contractSchema: TestSchema | undefined;
const openContractStore = async () => {
  contractSchema = freshSchema();
  return openPostgresStore({ url: contractSchema.url, poolSize: 4 });
};
const dropContractSchema = async () => {
  await contractSchema?.drop();
  contractSchema = undefined;
};
describeStoreContract("postgres", openContractStore, dropContractSchema);
describeRewrapContract("postgres", openContractStore, dropContractSchema);

/** Rows of a query on a plain connection, in `schema`. */
async function adminRows<R extends pg.QueryResultRow>(
  schema: string,
  text: string,
  values: unknown[] = [],
): Promise<R[]> {
  return withAdminClient(async (client) => {
    await client.query(`SET search_path = ${schema}`);
    return (await client.query<R>(text, values)).rows;
  });
}

/** Resolves to the value a promise rejects with (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(value)}`);
    },
    (error: unknown) => error,
  );
}

describe("PostgreSQL key store", () => {
  const schemas: TestSchema[] = [];
  const open: PostgresStore[] = [];

  function schema(): TestSchema {
    const fresh = freshSchema();
    schemas.push(fresh);
    return fresh;
  }

  async function openStore(url: string, poolSize = 3): Promise<PostgresStore> {
    const store = await openPostgresStore({ url, poolSize });
    open.push(store);
    return store;
  }

  /** `count` stores on one fresh schema, each with its own pool. */
  async function openStores(count: number): Promise<PostgresStore[]> {
    const at = schema();
    const first = await openStore(at.url);
    const others = await Promise.all(Array.from({ length: count - 1 }, () => openStore(at.url)));
    return [first, ...others];
  }

  afterEach(async () => {
    for (const store of open.splice(0)) await store.close();
    for (const s of schemas.splice(0)) await s.drop();
  });

  describe("database URL", () => {
    it("takes kmsd's schema parameter off the URL and sets the search_path", () => {
      const parsed = parseDatabaseUrl(
        "postgres://u:secret@db.example:6543/kms?sslmode=require&schema=tenant_1&options=-c%20work_mem%3D4MB",
      );
      expect(parsed.schema).toBe("tenant_1");
      expect(parsed.options).toBe("-c work_mem=4MB -c search_path=tenant_1");
      expect(parsed.applicationName).toBe("kmsd");
      const left = new URL(parsed.connectionString);
      expect([...left.searchParams.keys()]).toEqual(["sslmode"]);
      expect(left.password).toBe("secret");
      expect(clientConfig(parsed, { url: "" })).toMatchObject({
        connectionTimeoutMillis: 2000,
        statement_timeout: 10_000,
        application_name: "kmsd",
      });
    });

    it("leaves the schema to the server when none is named", () => {
      expect(parseDatabaseUrl("postgresql://h/db")).toMatchObject({
        schema: undefined,
        options: undefined,
      });
    });

    it("refuses other schemes, two schemas or a name needing quotes, never quoting the URL", () => {
      for (const url of [
        "mysql://u:hunter2@h/db",
        "not a url hunter2",
        "postgres://u:hunter2@h/db?schema=a&schema=b",
        "postgres://u:hunter2@h/db?schema=Upper",
        'postgres://u:hunter2@h/db?schema=a";drop',
      ]) {
        const error = (() => {
          try {
            parseDatabaseUrl(url);
          } catch (e) {
            return e as Error;
          }
          throw new Error(`accepted ${url}`);
        })();
        expect(error.message).not.toContain("hunter2");
      }
    });
  });

  describe("connection failures", () => {
    function withCode(message: string, code: string): Error {
      return Object.assign(new Error(message), { code });
    }

    it("become StoreUnavailableError; every other error passes unchanged", () => {
      const unavailable = [
        withCode("connect ECONNREFUSED 127.0.0.1:5432", "ECONNREFUSED"),
        withCode("read ECONNRESET", "ECONNRESET"),
        new AggregateError([withCode("connect ECONNREFUSED ::1:5432", "ECONNREFUSED")], ""),
        withCode("terminating connection due to administrator command", "57P01"),
        withCode("the database system is starting up", "57P03"),
        withCode("canceling statement due to statement timeout", "57014"),
        withCode("sorry, too many clients already", "53300"),
        withCode("connection failure", "08006"),
        new Error("Connection terminated unexpectedly"),
        new Error("timeout exceeded when trying to connect"),
      ];
      for (const error of unavailable) {
        const mapped = storeError(error);
        expect(mapped, error.message).toBeInstanceOf(StoreUnavailableError);
        expect((mapped as Error).cause).toBe(error);
      }
      const passing = [
        withCode('duplicate key value violates unique constraint "keys_pkey"', "23505"),
        withCode('relation "keys" does not exist', "42P01"),
        new AliasTakenError("a"),
        new RangeError("limit"),
      ];
      for (const error of passing) expect(storeError(error)).toBe(error);
    });
  });

  describe("migrations", () => {
    it("create the schema named in the URL and record each version once", async () => {
      const at = schema();
      const before = Date.now();
      const store = await openStore(at.url);
      expect(store.schema).toBe(at.schema);
      await store.close();
      await openStore(at.url);

      const rows = await adminRows<{ version: number; description: string; applied_at: number }>(
        at.schema,
        "SELECT version, description, applied_at::float8 AS applied_at FROM schema_migrations ORDER BY version",
      );
      expect(rows.map((r) => [r.version, r.description])).toEqual(
        PG_MIGRATIONS.map((m) => [m.version, m.description]),
      );
      for (const row of rows) expect(row.applied_at).toBeGreaterThanOrEqual(before);
    });

    it("use the server's search_path when the URL names no schema (libpq options honoured)", async () => {
      const at = schema();
      await withAdminClient((client) => client.query(`CREATE SCHEMA ${at.schema}`));
      const url = new URL(TEST_DATABASE_URL);
      url.searchParams.set("options", `-c search_path=${at.schema}`);

      const store = await openStore(url.toString());

      expect(store.schema).toBe(at.schema);
      const [found] = await adminRows<{ found: boolean }>(
        at.schema,
        "SELECT to_regclass('keys') IS NOT NULL AS found",
      );
      expect(found?.found).toBe(true);
    });

    it("are numbered 1, 2, 3, ... in order", () => {
      expect(PG_MIGRATIONS.map((m) => m.version)).toEqual(PG_MIGRATIONS.map((_, i) => i + 1));
    });

    it("are safe when many stores open the same fresh schema at once", async () => {
      const at = schema();
      const stores = await Promise.all(Array.from({ length: 6 }, () => openStore(at.url, 1)));

      const rows = await adminRows<{ version: number }>(
        at.schema,
        "SELECT version FROM schema_migrations ORDER BY version",
      );
      expect(rows.map((r) => r.version)).toEqual(PG_MIGRATIONS.map((m) => m.version));
      // Every store works on the one schema.
      const key = makeKey();
      await stores[0]?.createKey(key, makeVersion(key));
      for (const store of stores) expect(await store.getKey(P1, key.keyId)).toEqual(key);
    });

    it("wait for another instance's migrations however long they take (no statement timeout)", async () => {
      const at = schema();
      const holder = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await holder.connect();
      try {
        await holder.query("SELECT pg_advisory_lock($1, hashtext($2))", [
          LockClass.Migrations,
          at.schema,
        ]);
        let opened = false;
        const opening = openPostgresStore({ url: at.url, statementTimeoutMs: 100 }).then(
          (store) => {
            opened = true;
            open.push(store);
            return store;
          },
        );
        await new Promise((resolve) => setTimeout(resolve, 400));
        expect(opened).toBe(false);
        await holder.query("SELECT pg_advisory_unlock($1, hashtext($2))", [
          LockClass.Migrations,
          at.schema,
        ]);
        const store = await opening;
        await store.ping();
      } finally {
        await holder.end();
      }
    });

    it("refuse a schema from a newer kmsd without touching it", async () => {
      const at = schema();
      const store = await openStore(at.url);
      await store.close();
      const future = PG_MIGRATIONS.length + 1;
      await adminRows(
        at.schema,
        "INSERT INTO schema_migrations VALUES ($1, 'from the future', 42)",
        [future],
      );

      const error = await rejection(openPostgresStore({ url: at.url }));

      expect(error).toBeInstanceOf(SchemaVersionError);
      expect(error).toMatchObject({ storeVersion: future, codeVersion: PG_MIGRATIONS.length });
      const versions = await adminRows<{ version: number }>(
        at.schema,
        "SELECT version FROM schema_migrations ORDER BY version",
      );
      expect(versions.map((r) => r.version)).toEqual([
        ...PG_MIGRATIONS.map((m) => m.version),
        future,
      ]);
    });

    it("roll back a failing migration entirely and keep the earlier ones", async () => {
      const at = schema();
      const broken = [
        ...PG_MIGRATIONS,
        {
          version: PG_MIGRATIONS.length + 1,
          description: "broken",
          up: "CREATE TABLE half_done (x int); SELECT * FROM no_such_table;",
        },
      ];
      const parsed = parseDatabaseUrl(at.url);
      const client = new pg.Client(clientConfig(parsed, { url: at.url }));
      await client.connect();
      try {
        await expect(migratePostgres(client, at.schema, true, broken)).rejects.toThrow(
          /no_such_table/,
        );
      } finally {
        await client.end();
      }
      const versions = await adminRows<{ version: number }>(
        at.schema,
        "SELECT version FROM schema_migrations ORDER BY version",
      );
      expect(versions.map((r) => r.version)).toEqual(PG_MIGRATIONS.map((m) => m.version));
      const [halfDone] = await adminRows<{ found: boolean }>(
        at.schema,
        "SELECT to_regclass('half_done') IS NOT NULL AS found",
      );
      expect(halfDone?.found).toBe(false);
    });

    it("2 upgrades a schema created at 1, keeping its data, and indexes root key ids", async () => {
      const at = schema();
      const parsed = parseDatabaseUrl(at.url);
      const client = new pg.Client(clientConfig(parsed, { url: at.url }));
      await client.connect();
      try {
        expect(await migratePostgres(client, at.schema, true, PG_MIGRATIONS.slice(0, 1))).toEqual([
          1,
        ]);
      } finally {
        await client.end();
      }
      const key = makeKey();
      await adminRows(
        at.schema,
        `INSERT INTO keys (key_id, project_id, alias, description, key_spec, key_usage, origin,
          enterprise_project_id, state, created_at, primary_version)
          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1)`,
        [
          key.keyId,
          key.projectId,
          key.alias,
          key.description,
          key.keySpec,
          key.keyUsage,
          key.origin,
          key.enterpriseProjectId,
          key.state,
          key.createdAt,
        ],
      );

      const store = await openStore(at.url);

      expect(await store.getKey(P1, key.keyId)).toEqual(key);
      const indexes = await adminRows<{ indexname: string }>(
        at.schema,
        `SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND indexname LIKE '%root_key_id'
          ORDER BY indexname`,
        [at.schema],
      );
      expect(indexes.map((i) => i.indexname)).toEqual([
        "credentials_root_key_id",
        "key_versions_root_key_id",
      ]);
    });

    it("3 turns a trail written at 2 into format 1 records that verify, and appends seal on from them", async () => {
      const at = schema();
      const parsed = parseDatabaseUrl(at.url);
      const client = new pg.Client(clientConfig(parsed, { url: at.url }));
      await client.connect();
      try {
        expect(await migratePostgres(client, at.schema, true, PG_MIGRATIONS.slice(0, 2))).toEqual([
          1, 2,
        ]);
      } finally {
        await client.end();
      }
      const trail = formatOneTrail();
      for (const row of trail) {
        await adminRows(
          at.schema,
          `INSERT INTO audit_records (seq, time, request_id, protocol, project_id, principal,
            operation, key_id, sequence, outcome, latency_us, context, prev_hash, hash)
            VALUES (${Array.from({ length: 14 }, (_, i) => `$${i + 1}`).join(", ")})`,
          formatOneValues(row),
        );
      }

      const store = await openStore(at.url);

      await expectMigratedTrail(store, trail);
      const indexes = await adminRows<{ indexname: string }>(
        at.schema,
        `SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'audit_records'
          ORDER BY indexname`,
        [at.schema],
      );
      expect(indexes.map((i) => i.indexname)).toEqual([
        "audit_records_pkey",
        "audit_records_project",
      ]);
    });

    it("has verify find a lowered time bound, which would hide records from reads by time", async () => {
      const at = schema();
      const store = await openStore(at.url);
      await store.appendAudit(
        testAppend([makeAuditEntry({ time: 50 }), makeAuditEntry({ time: 10 })]),
      );
      await store.appendAudit(
        testAppend([makeAuditEntry({ time: 70 }), makeAuditEntry({ time: 20 })]),
      );
      expect(await store.auditIndexProblem()).toBeUndefined();

      await adminRows(at.schema, "UPDATE audit_records SET time_bound = 60 WHERE seq >= 3");
      expect(await store.readAudit({ since: 65, limit: 10 })).toEqual([]);
      expect(await store.auditIndexProblem()).toEqual({
        seq: 3,
        problem: expect.stringMatching(
          /time bound stored for the records up to 3 \(60\) is below the time of one of them \(70\)/,
        ),
      });
    });

    it("keep identifiers in bytewise order whatever the database collation", async () => {
      const at = schema();
      await openStore(at.url);
      const rows = await adminRows<{ column_name: string; collation_name: string | null }>(
        at.schema,
        `SELECT column_name, collation_name FROM information_schema.columns
          WHERE table_schema = $1 AND table_name = 'keys' AND column_name IN ('key_id', 'alias')
          ORDER BY column_name`,
        [at.schema],
      );
      expect(rows).toEqual([
        { column_name: "alias", collation_name: "C" },
        { column_name: "key_id", collation_name: "C" },
      ]);
    });
  });

  describe("several stores (separate pools) on one schema", () => {
    it("let exactly one of concurrent creates take an alias; the others get AliasTakenError", async () => {
      const stores = await openStores(4);
      for (let round = 0; round < 10; round++) {
        const keys = stores.map(() => makeKey({ alias: `contested-${round}` }));

        const results = await Promise.allSettled(
          stores.map((store, i) => {
            const key = keys[i] as KeyRecord;
            return store.createKey(key, makeVersion(key));
          }),
        );

        const won = results.filter((r) => r.status === "fulfilled");
        const lost = results.flatMap((r) => (r.status === "rejected" ? [r.reason] : []));
        expect(won).toHaveLength(1);
        expect(lost).toHaveLength(stores.length - 1);
        for (const reason of lost) expect(reason).toBeInstanceOf(AliasTakenError);
        const page = await stores[0]?.listKeys({ projectId: P1, limit: 1000 });
        const holders = page?.keys.filter((k) => k.alias === `contested-${round}`) ?? [];
        expect(holders).toHaveLength(1);
        // The losers left no version behind either.
        for (const key of keys) {
          if (key.keyId === holders[0]?.keyId) continue;
          expect(await stores[0]?.getKeyVersion(key.keyId, 1)).toBeUndefined();
        }
      }
    });

    it("serialize read-modify-write: concurrent increments all count", async () => {
      const stores = await openStores(3);
      const key = makeKey({ description: "0" });
      await stores[0]?.createKey(key, makeVersion(key));
      const n = 40;

      await Promise.all(
        stores.flatMap((store) =>
          Array.from({ length: n }, () =>
            store.updateKey(P1, key.keyId, (k) => ({
              description: String(Number(k.description) + 1),
            })),
          ),
        ),
      );

      expect((await stores[0]?.getKey(P1, key.keyId))?.description).toBe(String(3 * n));
    });

    it("rotate each due key exactly once when all sweep at the same time", async () => {
      const stores = await openStores(3);
      const ids: string[] = [];
      for (let i = 0; i < 200; i++) {
        const key = makeKey({ rotationEnabled: true, nextRotationAt: 10 + i });
        await stores[0]?.createKey(key, makeVersion(key));
        ids.push(key.keyId);
      }

      const results = await Promise.all(
        stores.map(async (store) => {
          const rotated: string[] = [];
          for (;;) {
            const batch = await store.rotateDueKeys(1000, makeNextVersion, 5);
            if (batch.length === 0) return rotated;
            rotated.push(...batch.map((key) => key.keyId));
          }
        }),
      );

      const all = results.flat();
      expect([...all].sort()).toEqual([...ids].sort());
      expect(new Set(all).size).toBe(ids.length);
      // Unless several sweepers rotated keys, the test proved nothing.
      expect(results.filter((r) => r.length > 0).length).toBeGreaterThan(1);
      const versions = await adminRows<{ version: number; n: number }>(
        stores[0]?.schema ?? "",
        "SELECT version, count(*)::int AS n FROM key_versions GROUP BY version ORDER BY version",
      );
      expect(versions).toEqual([
        { version: 1, n: ids.length },
        { version: 2, n: ids.length },
      ]);
      for (const id of ids.slice(0, 20)) {
        expect(await stores[1]?.getKey(P1, id)).toMatchObject({
          primaryVersion: 2,
          rotationCount: 1,
          lastRotationAt: 1000,
        });
      }
    });

    it("destroy each due key exactly once when all sweep at the same time", async () => {
      const stores = await openStores(3);
      const ids: string[] = [];
      for (let i = 0; i < 150; i++) {
        const key = makeKey({ state: KeyState.PendingDeletion, deletionAt: 10 });
        await stores[0]?.createKey(key, makeVersion(key));
        ids.push(key.keyId);
      }

      const results = await Promise.all(stores.map((store) => store.destroyDueKeys(1000)));

      const all = results.flat();
      expect([...all].sort()).toEqual([...ids].sort());
      expect(new Set(all).size).toBe(ids.length);
      expect(await stores[0]?.listKeys({ projectId: P1, limit: 10 })).toEqual({
        keys: [],
        total: 0,
      });
    });

    it("append concurrently to one audit chain without gaps", async () => {
      const stores = await openStores(3);
      const perStore = 60;

      await Promise.all(
        stores.map(async (store, s) => {
          // Batches of 1 to 7 entries, several in flight per store (its pool).
          const batches: Promise<void>[] = [];
          let size = 1;
          for (let i = 0; i < perStore; ) {
            const entries = [];
            for (const end = Math.min(i + size, perStore); i < end; i++) {
              entries.push(
                makeAuditEntry({ requestId: `store${s}-${String(i).padStart(3, "0")}` }),
              );
            }
            batches.push(store.appendAudit(testAppend(entries)));
            size = (size % 7) + 1;
          }
          await Promise.all(batches);
        }),
      );

      const records = await stores[0]?.readAudit({ limit: 10_000 });
      if (records === undefined) throw new Error("no store");
      expect(records).toHaveLength(3 * perStore);
      expectUnbrokenChain(records);
      const ids = requestIds(records);
      // Unless the stores' batches interleaved, the test proved nothing.
      const switches = ids.filter(
        (id, i) => i > 0 && id.slice(0, 6) !== ids[i - 1]?.slice(0, 6),
      ).length;
      expect(switches).toBeGreaterThan(3);
      expect(await stores[2]?.auditHead()).toEqual({
        seq: 3 * perStore,
        seal: records.at(-1)?.seal,
      });
    });

    it("hand out change seqs in commit order: a follower polling meanwhile misses none", async () => {
      const stores = await openStores(4);
      const [follower, ...writers] = stores as [PostgresStore, ...PostgresStore[]];
      const keys: KeyRecord[] = [];
      for (let i = 0; i < 6; i++) {
        const key = makeKey();
        await follower.createKey(key, makeVersion(key));
        keys.push(key);
      }
      let last = await follower.latestChangeSeq();
      const seen: KeyChange[] = [];
      let writing = true;
      const following = (async () => {
        while (writing) {
          for (const change of await follower.changesSince(last)) {
            seen.push(change);
            last = change.seq;
          }
        }
      })();
      const perWriter = 30;

      await Promise.all(
        writers.flatMap((store, w) =>
          Array.from({ length: perWriter }, (_, i) =>
            store.updateKey(P1, keys[(w + i) % keys.length]?.keyId ?? "", () => ({
              description: `w${w}-${i}`,
            })),
          ),
        ),
      );
      writing = false;
      await following;
      for (const change of await follower.changesSince(last)) seen.push(change);

      expect(seen).toHaveLength(writers.length * perWriter);
      const seqs = seen.map((c) => c.seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      expect(new Set(seqs).size).toBe(seqs.length);
    });
  });

  describe("change notifications", () => {
    it("wake a subscriber within a second of another store's change, again after its connection is cut", async () => {
      const [watched, writer] = await openStores(2);
      if (watched === undefined || writer === undefined) throw new Error("no store");
      let wakes = 0;
      const stop = watched.onChangeRecorded?.(() => {
        wakes++;
      });
      if (stop === undefined)
        throw new Error("the PostgreSQL store offers no change notifications");
      // The LISTEN connection wakes once when it comes up (changes may have been missed before).
      await eventually(() => wakes >= 1, 2000, "the LISTEN connection");
      const key = makeKey();

      let before = wakes;
      await writer.createKey(key, makeVersion(key));
      await eventually(() => wakes > before, 1000, "a wake-up after a change");

      // Another schema's changes do not wake it.
      const elsewhere = await openStore(schema().url);
      before = wakes;
      const other = makeKey();
      await elsewhere.createKey(other, makeVersion(other));
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(wakes).toBe(before);

      const listen = `${watched.schema}-listen`;
      expect(await terminateConnections({ applicationName: listen })).toBe(1);
      // Reconnected, it wakes at once (something may have changed meanwhile) ...
      before = wakes;
      await eventually(() => wakes > before, 3000, "a wake-up after reconnecting");
      // ... and listens again.
      before = wakes;
      await writer.updateKey(P1, key.keyId, () => ({ state: KeyState.Disabled }));
      await eventually(() => wakes > before, 1000, "a wake-up after the reconnection");
      stop();
    });
  });

  describe("lost connections", () => {
    /** The backend of `schema`'s pool waiting on a lock (the transaction under test). */
    async function blockedBackend(applicationName: string): Promise<number> {
      let pid: number | undefined;
      await eventually(
        async () => {
          const rows = await withAdminClient((client) =>
            client.query<{ pid: number }>(
              `SELECT pid FROM pg_stat_activity
                WHERE application_name = $1 AND wait_event_type = 'Lock'`,
              [applicationName],
            ),
          );
          pid = rows.rows[0]?.pid;
          return pid !== undefined;
        },
        5000,
        "the store's transaction to block",
      );
      return pid as number;
    }

    /**
     * An admin transaction holding an uncommitted key_versions row, so that
     * the store's insert of the same (key, version) waits for it midway
     * through its own transaction. Foreign keys are off in that session, so
     * the row may name a key the store has not committed yet.
     */
    async function holdVersionRow(schemaName: string, keyId: string, version: number) {
      const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await client.connect();
      await client.query(`SET search_path = ${schemaName}`);
      await client.query("SET session_replication_role = replica");
      await client.query("BEGIN");
      await client.query(
        `INSERT INTO key_versions (key_id, version, wrapped_material, root_key_id, created_at)
          VALUES ($1, $2, '\\x00', 'blocker', 0)`,
        [keyId, version],
      );
      return async () => {
        await client.query("ROLLBACK");
        await client.end();
      };
    }

    it("leave no half-created key when the connection dies between the key and its version", async () => {
      const at = schema();
      const store = await openStore(at.url);
      const key = makeKey();
      const release = await holdVersionRow(at.schema, key.keyId, 1);
      try {
        const creating = rejection(store.createKey(key, makeVersion(key)));
        const pid = await blockedBackend(at.schema);
        expect(await terminateConnections({ pids: [pid] })).toBe(1);

        expect(await creating).toBeInstanceOf(StoreUnavailableError);
      } finally {
        await release();
      }
      expect(await store.getKey(P1, key.keyId)).toBeUndefined();
      expect(await store.getKeyVersion(key.keyId, 1)).toBeUndefined();
      expect(await store.latestChangeSeq()).toBe(0);
      // The pool replaced the dead connection: the same key can be created now.
      await store.createKey(key, makeVersion(key));
      expect(await store.getKey(P1, key.keyId)).toEqual(key);
    });

    it("leave no half-rotated key when the connection dies midway through a sweep", async () => {
      const at = schema();
      const store = await openStore(at.url);
      const first = makeKey({ rotationEnabled: true, nextRotationAt: 1 });
      const second = makeKey({ rotationEnabled: true, nextRotationAt: 2 });
      for (const key of [first, second]) await store.createKey(key, makeVersion(key));
      const seq = await store.latestChangeSeq();
      const made: string[] = [];
      const recording: MakeKeyVersion = (keyId, version, now) => {
        made.push(keyId);
        return makeNextVersion(keyId, version, now);
      };
      // `first` is rotated, then the sweep waits to insert `second`'s version 2.
      const release = await holdVersionRow(at.schema, second.keyId, 2);
      try {
        const sweeping = rejection(store.rotateDueKeys(1000, recording, 10));
        const pid = await blockedBackend(at.schema);
        expect(made).toEqual([first.keyId, second.keyId]);
        await terminateConnections({ pids: [pid] });

        expect(await sweeping).toBeInstanceOf(StoreUnavailableError);
      } finally {
        await release();
      }
      expect(await store.getKey(P1, first.keyId)).toEqual(first);
      expect(await store.getKeyVersion(first.keyId, 2)).toBeUndefined();
      expect(await store.getKey(P1, second.keyId)).toEqual(second);
      expect(await store.latestChangeSeq()).toBe(seq);
      expect((await store.rotateDueKeys(1000, makeNextVersion, 10)).map((k) => k.keyId)).toEqual([
        first.keyId,
        second.keyId,
      ]);
    });
  });

  describe("when PostgreSQL goes away", () => {
    const relay = new PostgresRelay();

    beforeAll(() => relay.start());
    afterAll(() => relay.stop());

    it("cannot open: rejects with StoreUnavailableError within the connect timeout", async () => {
      await relay.stop();
      try {
        const started = Date.now();
        const error = await rejection(openPostgresStore({ url: relay.url(schema().schema) }));
        expect(error).toBeInstanceOf(StoreUnavailableError);
        expect(Date.now() - started).toBeLessThan(2500);
      } finally {
        await relay.start();
      }
    });

    it("fails fast with StoreUnavailableError, then recovers by itself when it returns", async () => {
      const at = schema();
      const store = await openStore(relay.url(at.schema));
      const key = makeKey();
      await store.createKey(key, makeVersion(key));
      let wakes = 0;
      store.onChangeRecorded?.(() => {
        wakes++;
      });
      await eventually(() => wakes >= 1, 2000, "the LISTEN connection");

      await relay.stop();
      try {
        for (const call of [
          () => store.ping(),
          () => store.getKey(P1, key.keyId),
          () => store.updateKey(P1, key.keyId, () => ({ description: "x" })),
          () => store.createCredential(makeCredential()),
          () => store.appendAudit(testAppend([makeAuditEntry()])),
        ]) {
          const started = Date.now();
          expect(await rejection(call())).toBeInstanceOf(StoreUnavailableError);
          expect(Date.now() - started).toBeLessThan(2500);
        }
      } finally {
        await relay.start();
      }

      await eventually(
        () =>
          store.ping().then(
            () => true,
            () => false,
          ),
        5000,
        "the store answering again",
      );
      expect(await store.getKey(P1, key.keyId)).toEqual(key);
      // The LISTEN connection came back by itself (and woke its subscriber).
      const before = wakes;
      const writer = await openStore(at.url);
      await writer.updateKey(P1, key.keyId, () => ({ description: "after" }));
      await eventually(() => wakes > before, 5000, "a notification after recovery");
    });
  });
});
