import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openSqliteStore } from "../../src/keystore/sqlite/sqlite-store.js";
import { summarizeStore } from "../../src/keystore/transfer/store-contents.js";
import {
  killIfRunning,
  readBootstrap,
  runCli,
  type ServeProcess,
  spawnServe,
  verifyAudit,
} from "../audit/cli-helpers.js";
import { freshSchema, type TestSchema } from "../support/postgres.js";
import {
  type CopyReport,
  createKeyRest,
  expectServesCopy,
  type PopulatedStore,
  populateStore,
  runStoreCopy,
  TempDirs,
} from "./populated-store.js";

/**
 * `kmsd store copy` from SQLite to PostgreSQL and back: the round trip
 * ends with the very records it started from, and kmsd serves each copy.
 */

const dirs = new TempDirs();
const newDir = () => dirs.create();
let schema: TestSchema;
let serve: ServeProcess | undefined;
afterAll(async () => {
  killIfRunning(serve);
  await schema?.drop();
  await dirs.removeAll();
});

async function copy(from: string, to: string): Promise<CopyReport> {
  const result = await runStoreCopy(from, to);
  expect(result.code, result.stderr).toBe(0);
  return result.report as CopyReport;
}

async function summaryOf(dataDir: string) {
  const store = await openSqliteStore({ dataDir });
  try {
    return await summarizeStore(store);
  } finally {
    await store.close();
  }
}

describe("kmsd store copy, SQLite to PostgreSQL to SQLite", () => {
  let source: string;
  let populated: PopulatedStore;
  beforeAll(async () => {
    schema = freshSchema("kmsd_copy");
    source = await newDir();
    populated = await populateStore(source);
  }, 60_000);

  it("round-trips every record, and kmsd serves the PostgreSQL copy and the final one", async () => {
    const toPostgres = await copy(source, schema.url);
    expect(toPostgres.ok).toBe(true);
    expect(toPostgres.to).toContain(`schema=${schema.schema}`);

    serve = await spawnServe(await newDir(), { KMSD_DATABASE_URL: schema.url, KMSD_WORKERS: "1" });
    await expectServesCopy(serve, populated);
    serve.proc.kill("SIGTERM");
    await serve.exited;

    // That kmsd appended audit records of its own; the copy back carries them too.
    const back = path.join(await newDir(), "back");
    expect((await copy(schema.url, back)).ok).toBe(true);
    const original = await summaryOf(source);
    const final = await summaryOf(back);
    for (const table of ["meta", "keys", "key_versions", "credentials", "tokens"] as const) {
      expect(final[table], table).toEqual(original[table]);
    }
    expect(final.audit_records.count).toBeGreaterThan(original.audit_records.count);
    const verified = await verifyAudit(back);
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.report.verified).toBe(final.audit_records.count);

    serve = await spawnServe(back);
    await expectServesCopy(serve, populated);
  });

  it("refuses a PostgreSQL schema that is not empty", async () => {
    const again = await runStoreCopy(source, schema.url);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("the target store is not empty");
  });
});

describe("kmsd store copy of a development server on PostgreSQL", () => {
  it("finds the root key kmsd generated in the data directory (--data-dir)", async () => {
    const devSchema = freshSchema("kmsd_copy_dev");
    let served: ServeProcess | undefined;
    try {
      const dev = await newDir();
      // No root key configured: kmsd serve generates <data dir>/root-key.dev.
      served = await spawnServe(dev, {
        KMSD_ROOT_KEY: "",
        KMSD_DATABASE_URL: devSchema.url,
        KMSD_WORKERS: "1",
      });
      await createKeyRest(served, (await readBootstrap(dev)).token, "dev-key");
      served.proc.kill("SIGTERM");
      await served.exited;
      const target = path.join(await newDir(), "copy");
      const result = await runCli(["store", "copy", "--from", devSchema.url, "--to", target], dev, {
        KMSD_ROOT_KEY: "",
      });
      expect(result.code, result.stderr).toBe(0);
      const report = JSON.parse(result.stdout) as CopyReport;
      expect(report.ok).toBe(true);
      expect(report.tables.keys?.target.count).toBe(1);
    } finally {
      killIfRunning(served);
      await devSchema.drop();
    }
  }, 60_000);
});
