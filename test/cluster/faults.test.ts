import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createKeyRest, PROJECT } from "../store/populated-store.js";
import {
  createKmsGrpcClient,
  decodeStatusDetails,
  isGrpcCallError,
  type KmsGrpcClient,
} from "../support/grpc-client.js";
import { createHealthClient, grpc, type HealthClient } from "../support/health-client.js";
import {
  freshSchema,
  PostgresRelay,
  type TestSchema,
  terminateConnections,
  withAdminClient,
} from "../support/postgres.js";
import {
  Cluster,
  cipherVersion,
  errorCode,
  type Instance,
  msUntil,
  post,
  schemaSql,
} from "./cluster-helpers.js";

/**
 * A real kmsd process whose PostgreSQL goes away: through a TCP relay the
 * test stops and starts (the shared server itself keeps running for other
 * tests), and by terminating its server processes from SQL.
 */

const FAIL_FAST_MS = 2000;
const RECOVER_MS = 5000;
const CACHE_OFFLINE_MS = 1500;

let schema: TestSchema;
let proxy: PostgresRelay;
let cluster: Cluster;
let kmsd: Instance;
let token: string;
let grpcClient: KmsGrpcClient;
let health: HealthClient;

beforeAll(async () => {
  schema = freshSchema("kmsd_faults");
  proxy = new PostgresRelay();
  await proxy.start();
  cluster = new Cluster(proxy.url(schema.schema));
  kmsd = await cluster.start({
    KMSD_HEALTH_CHECK_MS: "200",
    // Cached keys and credentials serve this long into an outage (see
    // --cache-offline-ms), then what needs them fails like the rest.
    KMSD_CACHE_OFFLINE_MS: String(CACHE_OFFLINE_MS),
  });
  token = await cluster.adminToken();
  grpcClient = createKmsGrpcClient(kmsd.port);
  health = createHealthClient(`127.0.0.1:${kmsd.port}`);
}, 60_000);

afterAll(async () => {
  if (kmsd !== undefined && kmsd.proc.exitCode !== null) console.log(kmsd.stderr());
  grpcClient?.close();
  health?.close();
  await cluster?.close();
  await proxy?.stop();
  await schema?.drop();
});

/** SQL on the test's schema (set in beforeAll). */
const sql = <R extends Record<string, unknown>>(text: string, values: unknown[] = []) =>
  schemaSql(schema.schema)<R>(text, values);

/**
 * The server processes serving this kmsd: its connections carry the schema
 * as application_name (the LISTEN one with "-listen"); the CLI's, also
 * named so, come and go with each command.
 */
async function kmsdBackends(): Promise<
  { pid: number; wait_event_type: string | null; backend_xid: string | null }[]
> {
  return withAdminClient(
    async (client) =>
      (
        await client.query<{
          pid: number;
          wait_event_type: string | null;
          backend_xid: string | null;
        }>(
          `SELECT pid, wait_event_type, backend_xid::text AS backend_xid FROM pg_stat_activity
          WHERE application_name IN ($1, $1 || '-listen') AND datname = current_database()`,
          [schema.schema],
        )
      ).rows,
  );
}

let databaseStopped = false;
async function stopDatabase(): Promise<void> {
  databaseStopped = true;
  await proxy.stop();
}
async function startDatabase(): Promise<void> {
  databaseStopped = false;
  await proxy.start();
}
// A failed test must not leave the next ones without a database.
afterEach(async () => {
  if (databaseStopped) await startDatabase();
});

/** A REST call, timed. */
async function timed(action: string, body: Record<string, unknown>) {
  const started = performance.now();
  const answer = await post(kmsd, token, action, body);
  return { answer, ms: performance.now() - started };
}

function grpcMetadata(): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set("x-auth-token", token);
  return metadata;
}

async function readyz(): Promise<number> {
  return (await fetch(`${kmsd.url}/readyz`)).status;
}

describe("PostgreSQL stops while kmsd serves, then comes back", () => {
  it("fails fast with 503 KMS.0104 / Unavailable, reports NOT_SERVING, recovers by itself", async () => {
    const cached = await createKeyRest(kmsd, token, "fault-cached");
    // Once the change feed has delivered the key's creation (a load racing
    // a change is not cached), one use puts the key in memory.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const sealed = await post(kmsd, token, "encrypt-data", { key_id: cached, plain_text: "x" });
    expect(sealed.status).toBe(200);
    expect(await health.check("")).toBe("SERVING");

    await stopDatabase();
    const outage = performance.now();
    const encryptCached = () => timed("encrypt-data", { key_id: cached, plain_text: "y" });

    // A key (and token) already in memory keeps serving for a while.
    const early = await encryptCached();
    expect(early.answer.status, early.answer.text).toBe(200);

    // REST: what needs the store.
    const created = await timed("create-key", { key_alias: "fault-during-outage" });
    expect(created.answer.status, created.answer.text).toBe(503);
    expect(errorCode(created.answer)).toBe("KMS.0104");
    expect(created.ms).toBeLessThan(FAIL_FAST_MS);
    const listed = await timed("list-keys", { limit: "10" });
    expect(listed.answer.status, listed.answer.text).toBe(503);
    expect(errorCode(listed.answer)).toBe("KMS.0104");
    expect(listed.ms).toBeLessThan(FAIL_FAST_MS);

    // gRPC: Unavailable with the Huawei code in ErrorInfo.
    const started = performance.now();
    const failure = await grpcClient
      .call("CreateKey", { project_id: PROJECT, key_alias: "fault-grpc" }, grpcMetadata())
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    expect(performance.now() - started).toBeLessThan(FAIL_FAST_MS);
    expect(isGrpcCallError(failure)).toBe(true);
    if (!isGrpcCallError(failure)) return;
    expect(failure.code).toBe(grpc.status.UNAVAILABLE);
    expect(decodeStatusDetails(failure)?.reason).toBe("KMS.0104");

    // Health follows within a couple of health checks.
    await msUntil(async () => (await health.check("")) === "NOT_SERVING", 3000, "NOT_SERVING");
    expect(await health.check("kms.v1.KmsService")).toBe("NOT_SERVING");
    expect(await readyz()).toBe(503);

    // Past --cache-offline-ms the cached key is dropped and refused like the rest.
    let refusedAt = 0;
    await msUntil(
      async () => {
        const { answer, ms } = await encryptCached();
        expect(ms).toBeLessThan(FAIL_FAST_MS);
        if (answer.status === 200) return false;
        expect(answer.status, answer.text).toBe(503);
        expect(errorCode(answer)).toBe("KMS.0104");
        refusedAt = performance.now() - outage;
        return true;
      },
      CACHE_OFFLINE_MS + 3000,
      "the cached key being refused",
    );
    // The bound counts from the first failed poll of the change feed, which
    // may have been sent a moment before the relay stopped.
    expect(refusedAt).toBeGreaterThanOrEqual(CACHE_OFFLINE_MS - 300);

    await startDatabase();
    const recovered = await msUntil(
      async () =>
        (await post(kmsd, token, "create-key", { key_alias: `fault-after-${Date.now()}` }))
          .status === 200,
      RECOVER_MS,
      "create-key after PostgreSQL came back",
    );
    await msUntil(async () => (await health.check("")) === "SERVING", RECOVER_MS, "SERVING");
    expect(await readyz()).toBe(200);
    console.log(`recovered ${Math.round(recovered)} ms after PostgreSQL came back`);
    // Nothing of the refused creations was stored.
    expect(
      await sql("SELECT key_id FROM keys WHERE alias LIKE 'fault-during%' OR alias = 'fault-grpc'"),
    ).toEqual([]);
    const decrypted = await post(kmsd, token, "decrypt-data", {
      cipher_text: (sealed.json as { cipher_text: string }).cipher_text,
    });
    expect(decrypted.status).toBe(200);
  });
});

describe("kmsd's connections terminated from SQL", () => {
  it("every request fails fast or succeeds, and kmsd recovers (change feed included) within five seconds", async () => {
    const keyId = await createKeyRest(kmsd, token, "fault-terminated");
    const backends = await kmsdBackends();
    expect(backends.length).toBeGreaterThan(0);
    // (A connection may close by itself meanwhile: idle ones time out.)
    expect(await terminateConnections({ pids: backends.map((b) => b.pid) })).toBeGreaterThan(0);

    const started = performance.now();
    for (;;) {
      const { answer, ms } = await timed("list-keys", { limit: "10" });
      expect(ms).toBeLessThan(FAIL_FAST_MS);
      if (answer.status === 200) break;
      expect(answer.status, answer.text).toBe(503);
      expect(errorCode(answer)).toBe("KMS.0104");
      expect(performance.now() - started).toBeLessThan(RECOVER_MS);
    }
    // The change feed's listener came back too: a change made elsewhere still arrives.
    await post(kmsd, token, "encrypt-data", { key_id: keyId, plain_text: "warm" });
    await msUntil(async () => (await kmsdBackends()).length > 0, RECOVER_MS, "reconnection");
    await cluster.cli(["keys", "disable", "--project", PROJECT, "--key-id", keyId]);
    const ms = await msUntil(
      async () =>
        errorCode(await post(kmsd, token, "encrypt-data", { key_id: keyId, plain_text: "x" })) ===
        "KMS.0209",
      RECOVER_MS,
      "the disable reaching kmsd",
    );
    expect(ms).toBeLessThan(1000);
  });
});

describe("a connection lost mid-transaction", () => {
  /**
   * Holds key_versions locked from another session, so that kmsd's
   * transaction stops midway (after writing, before it can commit); kills
   * that transaction's server process; then lets go of the lock.
   */
  async function killMidTransaction(
    request: () => Promise<{ status: number; json: unknown; text: string }>,
  ) {
    return withAdminClient(async (admin) => {
      await admin.query(`SET search_path TO ${schema.schema}`);
      await admin.query("BEGIN");
      await admin.query("LOCK TABLE key_versions IN ACCESS EXCLUSIVE MODE");
      const pending = request();
      let victim: { pid: number; backend_xid: string | null } | undefined;
      await msUntil(
        async () => {
          victim = (await kmsdBackends()).find((b) => b.wait_event_type === "Lock");
          return victim !== undefined;
        },
        5000,
        "kmsd's transaction waiting for the lock",
      );
      // It has written already: the transaction holds an id.
      expect(victim?.backend_xid).not.toBeNull();
      await terminateConnections({ pids: [victim?.pid ?? 0] });
      const answer = await pending;
      await admin.query("ROLLBACK");
      return answer;
    });
  }

  it("CreateKey: answered 503 KMS.0104, and neither the key nor its version exists", async () => {
    const answer = await killMidTransaction(() =>
      post(kmsd, token, "create-key", { key_alias: "fault-half-created" }),
    );
    expect(answer.status, answer.text).toBe(503);
    expect(errorCode(answer as Parameters<typeof errorCode>[0])).toBe("KMS.0104");
    expect(await sql("SELECT key_id FROM keys WHERE alias = 'fault-half-created'")).toEqual([]);
    expect(
      await sql(
        "SELECT v.key_id FROM key_versions v LEFT JOIN keys k USING (key_id) WHERE k.key_id IS NULL",
      ),
    ).toEqual([]);
  });

  it("RotateOnDemand: answered 503 KMS.0104, and the key keeps its one version", async () => {
    const keyId = await createKeyRest(kmsd, token, "fault-half-rotated");
    const answer = await killMidTransaction(() =>
      post(kmsd, token, "rotate-on-demand", { key_id: keyId }),
    );
    expect(answer.status, answer.text).toBe(503);
    const [key] = await sql<{ primary_version: number; rotation_count: number }>(
      "SELECT primary_version, rotation_count FROM keys WHERE key_id = $1",
      [keyId],
    );
    expect(key).toEqual({ primary_version: 1, rotation_count: 0 });
    expect(await sql("SELECT version FROM key_versions WHERE key_id = $1", [keyId])).toEqual([
      { version: 1 },
    ]);
    await msUntil(
      async () => (await post(kmsd, token, "list-keys", { limit: "1" })).status === 200,
      RECOVER_MS,
      "recovery",
    );
    const sealed = await post(kmsd, token, "encrypt-data", { key_id: keyId, plain_text: "x" });
    expect(sealed.status, sealed.text).toBe(200);
    expect(cipherVersion((sealed.json as { cipher_text: string }).cipher_text)).toBe(1);
  });
});
