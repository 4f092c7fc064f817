import { existsSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withCore } from "../../src/cli/admin-call.js";
import { verifyCopy } from "../../src/cli/commands/store.js";
import { defaultConfig } from "../../src/config/settings.js";
import { openSqliteDatabase } from "../../src/keystore/sqlite/driver.js";
import { openSqliteStore } from "../../src/keystore/sqlite/sqlite-store.js";
import { copyStore } from "../../src/keystore/transfer/copy-store.js";
import { summarizeStore } from "../../src/keystore/transfer/store-contents.js";
import {
  copyDataDir,
  killIfRunning,
  readBootstrap,
  type ServeProcess,
  spawnServe,
  verifyAudit,
} from "../audit/cli-helpers.js";
import { removeDir, TEST_ROOT_KEY } from "../support/kmsd.js";
import { appendStart, editAuditRecord } from "../support/sqlite-audit.js";
import {
  type CopyReport,
  createKeyRest,
  expectServesCopy,
  type PopulatedStore,
  populateStore,
  runStoreCopy,
  TempDirs,
} from "./populated-store.js";

/** `kmsd store copy` between two SQLite data directories. */

const dirs = new TempDirs();
const newDir = () => dirs.create();
let serve: ServeProcess | undefined;
afterAll(async () => {
  killIfRunning(serve);
  await dirs.removeAll();
});

describe("kmsd store copy, SQLite to SQLite", () => {
  let source: string;
  let populated: PopulatedStore;
  beforeAll(async () => {
    source = await newDir();
    populated = await populateStore(source);
  }, 60_000);

  it("copies everything, verifies it, and a kmsd served from the copy works as the original", async () => {
    const target = path.join(await newDir(), "copy");
    const result = await runStoreCopy(source, target);
    expect(result.code, result.stderr).toBe(0);
    const report = result.report as CopyReport;
    expect(report.ok).toBe(true);
    expect(report.tables.keys?.target.count).toBe(3);
    expect(report.tables.key_versions?.target.count).toBe(4);
    expect(report.tables.credentials?.target.count).toBe(2);
    expect(report.tables.tokens?.target.count).toBe(2);
    expect(report.tables.meta?.target.count).toBeGreaterThanOrEqual(2);
    const auditCount = report.tables.audit_records?.target.count ?? 0;
    expect(auditCount).toBeGreaterThan(10);
    expect(report.audit_chain).toEqual({ ok: true, verified: auditCount });
    for (const table of Object.values(report.tables)) expect(table.match).toBe(true);

    const verified = await verifyAudit(target);
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.report.verified).toBe(auditCount);

    serve = await spawnServe(target);
    await expectServesCopy(serve, populated);
    serve.proc.kill("SIGTERM");
    await serve.exited;
  });

  it("refuses a target that is not empty, leaving it as it was", async () => {
    const target = await newDir();
    expect((await runStoreCopy(source, target)).code).toBe(0);
    const store = await openSqliteStore({ dataDir: target });
    const before = await summarizeStore(store);
    await store.close();

    const again = await runStoreCopy(source, target);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(
      /target store is not empty \(it holds meta, keys, credentials, tokens, audit_records\)/,
    );
    const reopened = await openSqliteStore({ dataDir: target });
    expect(await summarizeStore(reopened)).toEqual(before);
    await reopened.close();
  });

  it("refuses a root key that is not the source's before writing anything", async () => {
    const target = path.join(await newDir(), "copy");
    const other = Buffer.alloc(32, 9).toString("base64");
    const result = await runStoreCopy(source, target, { KMSD_ROOT_KEY: other });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("is not the one this store was created with");
    expect(existsSync(target)).toBe(false);
  });

  it("copies a development store with the key file kmsd generated in it", async () => {
    const dev = await newDir();
    // No root key configured: kmsd serve generates data/root-key.dev.
    const served = await spawnServe(dev, { KMSD_ROOT_KEY: "" });
    await createKeyRest(served, (await readBootstrap(dev)).token, "dev-key");
    served.proc.kill("SIGTERM");
    await served.exited;
    const result = await runStoreCopy(dev, path.join(await newDir(), "copy"), {
      KMSD_ROOT_KEY: "",
    });
    expect(result.code, result.stderr).toBe(0);
    expect(result.report?.tables.keys?.target.count).toBe(1);
    expect(result.report?.audit_chain.ok).toBe(true);
  });

  it("refuses a source that holds no store", async () => {
    const empty = await newDir();
    const result = await runStoreCopy(empty, path.join(empty, "copy"));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`there is no kmsd store at ${empty}`);
  });

  it("exits 1 when the copy does not verify: a source whose audit trail was tampered with", async () => {
    const tampered = await copyDataDir(source);
    const db = openSqliteDatabase(path.join(tampered, "kmsd.db"));
    const start = appendStart(db, 2);
    editAuditRecord(db, 2, (fields) => {
      fields.outcome = "KMS.0000";
    });
    db.close();
    const result = await runStoreCopy(tampered, path.join(await newDir(), "copy"));
    await removeDir(tampered);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /the copy does not match its source \(its audit chain breaks: (record 2 does not match its seal: it was changed|records [12] to [2-9] do not match their seal: one of them was changed)\)/,
    );
    // Copied faithfully, tampering included: only the chain check fails.
    const report = result.report as CopyReport;
    expect(Object.values(report.tables).every((table) => table.match)).toBe(true);
    expect(report.audit_chain).toMatchObject({ ok: false, verified: start - 1 });
    expect(report.ok).toBe(false);
  });

  it("reports each table whose copy differs, and a broken audit chain", async () => {
    const target = await newDir();
    const from = await openSqliteStore({ dataDir: source });
    const to = await openSqliteStore({ dataDir: target });
    try {
      const { auditHeadSeq } = await copyStore(from, to);
      // The target's audit key, as kmsd opening it finds it.
      const config = { ...defaultConfig(), rootKey: TEST_ROOT_KEY, dataDir: target };
      const chainKey = () => withCore(config, async (core) => core.auditKeys.chain);
      const clean = await verifyCopy(from, to, auditHeadSeq, chainKey);
      expect(clean.ok).toBe(true);

      // Behind the store's back: one key's description, one record's outcome.
      const db = openSqliteDatabase(to.path);
      db.prepare("UPDATE keys SET description = 'changed' WHERE key_id = ?").run(
        populated.disabledKeyId,
      );
      const start = appendStart(db, 3);
      editAuditRecord(db, 3, (fields) => {
        fields.outcome = "KMS.0000";
      });
      db.close();

      const tampered = await verifyCopy(from, to, auditHeadSeq, chainKey);
      expect(tampered.ok).toBe(false);
      const differing = Object.entries(tampered.tables)
        .filter(([, table]) => !table.match)
        .map(([name]) => name);
      expect(differing).toEqual(["keys", "audit_records"]);
      expect(tampered.tables.keys.target.count).toBe(tampered.tables.keys.source.count);
      expect(tampered.audit_chain).toMatchObject({ ok: false, verified: start - 1 });
    } finally {
      await to.close();
      await from.close();
    }
  });
});
