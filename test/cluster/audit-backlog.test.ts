import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKeyRest } from "../store/populated-store.js";
import { freshSchema, PostgresRelay, type TestSchema } from "../support/postgres.js";
import { Cluster, errorCode, type Instance, msUntil, post, schemaSql } from "./cluster-helpers.js";

/**
 * The audit trail fails closed. While PostgreSQL is unreachable, keys and
 * tokens already cached keep serving (--cache-offline-ms) and their audit
 * records wait in memory; once --audit-backlog-max of them wait, kmsd
 * refuses requests (KMS.0104) instead of serving requests it could not
 * record. When the database is back, the backlog is written, in order, as
 * one unbroken chain, and requests are served again.
 */

const BACKLOG_MAX = 1000;

let schema: TestSchema;
let relay: PostgresRelay;
let cluster: Cluster;
let kmsd: Instance;
let token: string;
let keyId: string;

beforeAll(async () => {
  schema = freshSchema("kmsd_audit_backlog");
  relay = new PostgresRelay();
  await relay.start();
  cluster = new Cluster(relay.url(schema.schema));
  kmsd = await cluster.start({
    KMSD_AUDIT_BACKLOG_MAX: String(BACKLOG_MAX),
    KMSD_CACHE_OFFLINE_MS: "60000",
  });
  token = await cluster.adminToken();
  keyId = await createKeyRest(kmsd, token, "audit-backlog");
}, 60_000);

afterAll(async () => {
  await relay?.start().catch(() => undefined);
  await cluster?.close();
  await relay?.stop();
  await schema?.drop();
});

const encrypt = () => post(kmsd, token, "encrypt-data", { key_id: keyId, plain_text: "backlog" });

async function encryptRecords(): Promise<number> {
  const rows = await schemaSql(schema.schema)<{ n: string }>(
    `SELECT count(*) AS n FROM audit_records
      WHERE record::json->>'operation' = 'EncryptData' AND record::json->>'outcome' = 'OK'`,
  );
  return Number(rows[0]?.n);
}

describe("an unreachable store and the audit backlog", () => {
  it("serves from cache until the backlog is full, then refuses; writes it all once the store is back", async () => {
    expect((await encrypt()).status).toBe(200);
    // The change feed still carries the key's and the token's creation, which
    // may drop them from the caches after this first use: let it catch up
    // (NOTIFY, or a poll every 250 ms), then use them again so both are cached.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect((await encrypt()).status).toBe(200);
    await msUntil(async () => (await encryptRecords()) === 2, 5000, "the first records");

    await relay.stop();
    let served = 0;
    let refused: Awaited<ReturnType<typeof encrypt>> | undefined;
    // One request at a time: the refusal must come exactly when the backlog is full.
    while (refused === undefined && served <= BACKLOG_MAX) {
      const answer = await encrypt();
      if (answer.status === 200) served++;
      else refused = answer;
    }
    expect(served).toBe(BACKLOG_MAX);
    expect(refused?.status).toBe(503);
    expect(refused && errorCode(refused)).toBe("KMS.0104");
    expect(JSON.stringify(refused?.json)).toContain("audit trail");
    // Still refused, and the refusals did not grow the backlog.
    for (let i = 0; i < 50; i++) expect((await encrypt()).status).toBe(503);
    const metrics = await (await fetch(`${kmsd.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`kmsd_audit_backlog\\S* ${BACKLOG_MAX}\\b`));

    await relay.start();
    const recoveredMs = await msUntil(
      async () => (await encrypt()).status === 200,
      10_000,
      "serving again",
    );
    // Retries back off to at most 2 s; the health check and the pool reconnect meanwhile.
    expect(recoveredMs).toBeLessThan(5000);
    await msUntil(
      async () => (await encryptRecords()) >= 2 + BACKLOG_MAX + 1,
      5000,
      "the backlog written",
    );
    expect(await encryptRecords()).toBeLessThanOrEqual(2 + BACKLOG_MAX + 10);
    const verified = await cluster.cli<{ ok: boolean }>(["audit", "verify"]);
    expect(verified.ok).toBe(true);
  }, 60_000);
});
