import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../audit/cli-helpers.js";
import { createKeyRest } from "../store/populated-store.js";
import { freshSchema, type TestSchema } from "../support/postgres.js";
import { Cluster, errorCode, type Instance, post, schemaSql } from "./cluster-helpers.js";

/**
 * Two kmsd processes on one PostgreSQL schema, both sweeping often: what
 * must happen once happens once, and their audit records form one chain.
 */

let schema: TestSchema;
let cluster: Cluster;
let a: Instance;
let b: Instance;
let token: string;

/** Both instances sweep every 100 ms, so their sweeps overlap all the time. */
const SWEEPS = { KMSD_ROTATION_SWEEP_MS: "100", KMSD_DELETION_SWEEP_MS: "100" };

beforeAll(async () => {
  schema = freshSchema("kmsd_once");
  cluster = new Cluster(schema.url);
  a = await cluster.start(SWEEPS);
  token = await cluster.adminToken();
  b = await cluster.start(SWEEPS);
}, 60_000);

afterAll(async () => {
  await cluster?.close();
  await schema?.drop();
});

/** SQL on the test's schema (set in beforeAll). */
const sql = <R extends Record<string, unknown>>(text: string, values: unknown[] = []) =>
  schemaSql(schema.schema)<R>(text, values);

/** How many log lines of both instances carry this message. */
function logged(message: string): number {
  return [a, b]
    .flatMap((instance) => instance.stderr().split("\n"))
    .filter((line) => line.includes(`"msg":"${message}"`)).length;
}

async function until(condition: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function createKeys(prefix: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push(await createKeyRest(a, token, `${prefix}-${i}`));
  return ids;
}

describe("work that must happen once", () => {
  it("a scheduled rotation due on both instances happens once: one new version per key", async () => {
    const keyIds = await createKeys("once-rotate", 8);
    for (const keyId of keyIds) {
      const enabled = await post(b, token, "enable-key-rotation", { key_id: keyId });
      expect(enabled.status, enabled.text).toBe(200);
    }
    const rotatedBefore = logged("key rotated: its rotation interval passed");
    // Due for a minute: both sweepers find them at their next sweep.
    await sql("UPDATE keys SET next_rotation_at = $1 WHERE key_id = ANY($2)", [
      Date.now() - 60_000,
      keyIds,
    ]);
    await until(async () => {
      const rows = await sql<{ n: string }>(
        "SELECT count(*) AS n FROM keys WHERE key_id = ANY($1) AND primary_version = 2",
        [keyIds],
      );
      return Number(rows[0]?.n) === keyIds.length;
    }, "the rotations");
    // Several more sweeps of each instance: none may rotate again.
    await sleep(1000);
    const versions = await sql<{ key_id: string; versions: string; rotation_count: string }>(
      `SELECT k.key_id, count(v.version) AS versions, k.rotation_count
        FROM keys k JOIN key_versions v USING (key_id) WHERE k.key_id = ANY($1)
        GROUP BY k.key_id, k.rotation_count`,
      [keyIds],
    );
    expect(versions).toHaveLength(keyIds.length);
    for (const row of versions) {
      expect(Number(row.versions), row.key_id).toBe(2);
      expect(Number(row.rotation_count), row.key_id).toBe(1);
    }
    expect(logged("key rotated: its rotation interval passed") - rotatedBefore).toBe(keyIds.length);
  });

  it("a deletion due on both instances destroys each key once", async () => {
    const keyIds = await createKeys("once-delete", 8);
    for (const keyId of keyIds) {
      const scheduled = await post(b, token, "schedule-key-deletion", {
        key_id: keyId,
        pending_days: "7",
      });
      expect(scheduled.status, scheduled.text).toBe(200);
    }
    const destroyedBefore = logged("key destroyed: its deletion date passed");
    await sql("UPDATE keys SET deletion_at = $1 WHERE key_id = ANY($2)", [
      Date.now() - 60_000,
      keyIds,
    ]);
    await until(async () => {
      const rows = await sql<{ n: string }>(
        "SELECT count(*) AS n FROM keys WHERE key_id = ANY($1)",
        [keyIds],
      );
      return Number(rows[0]?.n) === 0;
    }, "the destructions");
    await sleep(500);
    expect(logged("key destroyed: its deletion date passed") - destroyedBefore).toBe(keyIds.length);
    const orphans = await sql("SELECT key_id FROM key_versions WHERE key_id = ANY($1)", [keyIds]);
    expect(orphans).toEqual([]);
    for (const instance of [a, b]) {
      const gone = await post(instance, token, "describe-key", { key_id: keyIds[0] });
      expect(errorCode(gone)).toBe("KMS.0207");
    }
  });

  it("CreateKey with one alias on both instances at once: one wins, the other gets KMS.0308", async () => {
    for (let round = 0; round < 10; round++) {
      const alias = `once-race-${round}`;
      const answers = await Promise.all(
        [a, b].map((instance) => post(instance, token, "create-key", { key_alias: alias })),
      );
      const statuses = answers.map((answer) => answer.status).sort();
      expect(statuses, answers.map((answer) => answer.text).join("\n")).toEqual([200, 400]);
      const loser = answers.find((answer) => answer.status === 400);
      expect(loser && errorCode(loser)).toBe("KMS.0308");
      const stored = await sql("SELECT key_id FROM keys WHERE alias = $1", [alias]);
      expect(stored).toHaveLength(1);
    }
  });

  it("the audit chain verifies after concurrent load on both instances", async () => {
    const keyId = await createKeyRest(a, token, "once-audit");
    const load = async (instance: Instance) => {
      const statuses: number[] = [];
      // Ten requests in flight on each instance, 300 in all per instance.
      await Promise.all(
        Array.from({ length: 10 }, async () => {
          for (let i = 0; i < 30; i++) {
            const answer = await post(instance, token, "encrypt-data", {
              key_id: keyId,
              plain_text: `load ${i}`,
            });
            statuses.push(answer.status);
          }
        }),
      );
      return statuses;
    };
    const [onA, onB] = await Promise.all([load(a), load(b)]);
    expect([...(onA ?? []), ...(onB ?? [])].every((status) => status === 200)).toBe(true);
    // A graceful stop writes out what each instance still buffers.
    await cluster.stop(a);
    await cluster.stop(b);
    const verify = await runCli(["audit", "verify"], await cluster.dataDir(), cluster.env());
    expect(verify.code, verify.stderr).toBe(0);
    const report = JSON.parse(verify.stdout) as { ok: boolean; verified: number };
    expect(report.ok).toBe(true);
    expect(report.verified).toBeGreaterThanOrEqual(600);
    const principals = await sql<{ n: string }>(
      "SELECT count(*) AS n FROM audit_records WHERE record::json->>'operation' = 'EncryptData'",
    );
    expect(Number(principals[0]?.n)).toBe(600);
  });
});
