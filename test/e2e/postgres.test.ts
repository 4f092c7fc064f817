/**
 * kmsd on PostgreSQL end to end: a server (createServer) and the real CLI
 * (bin/kmsd.js, another process) on one schema; PostgreSQL made to go away
 * (for this server only) through a relay.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { KmsService } from "../../gen/kms/v1/kms_pb.js";
import { runKmsd } from "../support/cli.js";
import {
  type RunningKmsd,
  removeDir,
  startKmsd,
  TEST_ROOT_KEY,
  tempDataDir,
  testToken,
} from "../support/kmsd.js";
import { freshSchema, PostgresRelay, type TestSchema } from "../support/postgres.js";
import { eventually } from "../support/store-faults.js";
import { expectError, expectOk, kms, request, str } from "./rest-helpers.js";

const PROJECT = "pgproject";

describe("kmsd on PostgreSQL", () => {
  const relay = new PostgresRelay();
  let schema: TestSchema;
  let kmsd: RunningKmsd;
  let cliDir: string;

  /** Runs a CLI command on the same schema (directly, not through the relay), from its own data dir. */
  async function cli(...args: string[]): Promise<unknown> {
    const done = await runKmsd(args, {
      KMSD_DATABASE_URL: schema.url,
      KMSD_ROOT_KEY: TEST_ROOT_KEY,
      KMSD_DATA_DIR: cliDir,
      KMSD_LOG_LEVEL: "error",
    });
    expect(done.code, done.stderr).toBe(0);
    return JSON.parse(done.stdout);
  }

  async function encrypt(keyId: string, plainText: string) {
    return kms(kmsd, PROJECT, "encrypt-data", { key_id: keyId, plain_text: plainText });
  }

  beforeAll(async () => {
    schema = freshSchema();
    cliDir = await tempDataDir();
    await relay.start();
    kmsd = await startKmsd({
      databaseUrl: relay.url(schema.schema),
      databasePoolSize: 4,
      // Longer than the one second allowed: only a notification is fast enough.
      changePollMs: 10_000,
      healthCheckMs: 200,
      cacheOfflineMs: 1500,
    });
  });

  afterAll(async () => {
    await kmsd?.stop();
    await relay.stop();
    await schema?.drop();
    await removeDir(cliDir);
  });

  it("encrypts and decrypts over REST with a key the CLI created on the same database", async () => {
    const created = await cli("keys", "create", "--project", PROJECT, "--alias", "e2e-key");
    const keyId = str(created, "key_id");

    const cipherText = str(expectOk(await encrypt(keyId, "hello postgres")), "cipher_text");
    const decrypted = expectOk(
      await kms(kmsd, PROJECT, "decrypt-data", { cipher_text: cipherText }),
    );

    expect(decrypted).toMatchObject({ key_id: keyId, plain_text: "hello postgres" });
  });

  it("sees another process disable a key within a second (LISTEN/NOTIFY, polling every 10 s)", async () => {
    const keyId = str(
      await cli("keys", "create", "--project", PROJECT, "--alias", "to-disable"),
      "key_id",
    );
    expectOk(await encrypt(keyId, "cached now"));

    await cli("keys", "disable", "--project", PROJECT, "--key-id", keyId);
    const disabledAt = Date.now();

    await eventually(
      async () => (await encrypt(keyId, "x")).status !== 200,
      1000,
      "the disabled key to be refused",
    );
    expect(Date.now() - disabledAt).toBeLessThan(1000);
    expectError(await encrypt(keyId, "x"), 400, "KMS.0209");
  });

  it("answers 503 KMS.0104 and is not ready while PostgreSQL is away; recovers within five seconds", async () => {
    const keyId = str(
      expectOk(await kms(kmsd, PROJECT, "create-key", { key_alias: "through-outage" })),
      "key_info",
      "key_id",
    );
    // The key's own creation comes back through the change feed and drops
    // it from the cache: let that happen first, then load it.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expectOk(await encrypt(keyId, "warm the cache"));

    await relay.stop();
    try {
      // What needs the store fails fast; a key already in memory still serves (for a bounded time).
      const started = Date.now();
      expectError(
        await kms(kmsd, PROJECT, "create-key", { key_alias: "during-outage" }),
        503,
        "KMS.0104",
      );
      expect(Date.now() - started).toBeLessThan(2500);
      for (const transport of [
        createConnectTransport({ baseUrl: kmsd.url, httpVersion: "1.1" }),
        createGrpcTransport({ baseUrl: kmsd.url }),
      ]) {
        const client = createClient(KmsService, transport);
        const error = await client
          .createKey(
            { projectId: PROJECT, keyAlias: "during-outage" },
            { headers: { "x-auth-token": await testToken(kmsd.config, PROJECT) } },
          )
          .then(
            () => undefined,
            (reason: unknown) => ConnectError.from(reason),
          );
        expect(error?.code).toBe(Code.Unavailable);
        expect(error?.findDetails(ErrorInfoSchema).map((info) => info.reason)).toEqual([
          "KMS.0104",
        ]);
      }
      expectOk(await encrypt(keyId, "from the cache"));
      await eventually(
        async () =>
          (await request(kmsd.url, "/readyz", undefined, { method: "GET" })).status === 503,
        2000,
        "/readyz to report not ready",
      );
      // Past --cache-offline-ms the cached keys and credentials are dropped.
      await eventually(
        async () => (await encrypt(keyId, "x")).status === 503,
        4000,
        "cached keys to stop serving",
      );
      expectError(await encrypt(keyId, "x"), 503, "KMS.0104");
    } finally {
      await relay.start();
    }
    const back = Date.now();

    await eventually(
      async () => (await request(kmsd.url, "/readyz", undefined, { method: "GET" })).status === 200,
      5000,
      "/readyz to report ready again",
    );
    await eventually(
      async () => (await encrypt(keyId, "y")).status === 200,
      5000,
      "encrypting again",
    );
    expectOk(await kms(kmsd, PROJECT, "create-key", { key_alias: "after-outage" }));
    expect(Date.now() - back).toBeLessThan(5000);
  });

  it("keeps one audit chain for the server and the CLI, which kmsd audit verify --database-url checks", async () => {
    await kmsd.server.stop();
    const done = await runKmsd(["audit", "verify", "--database-url", schema.url], {
      KMSD_ROOT_KEY: TEST_ROOT_KEY,
      KMSD_DATA_DIR: cliDir,
      KMSD_LOG_LEVEL: "error",
    });

    expect(done.code, done.stderr).toBe(0);
    const report = JSON.parse(done.stdout) as { ok: boolean; verified: number };
    expect(report.ok).toBe(true);
    // The REST, Connect and gRPC requests above and the CLI's own calls.
    expect(report.verified).toBeGreaterThan(10);
  });
});

describe("kmsd CLI with PostgreSQL unreachable", () => {
  it("fails fast (exit 1) saying the store is unavailable, without showing the URL's password", async () => {
    const dir = await tempDataDir();
    try {
      const started = Date.now();
      const done = await runKmsd(["keys", "list", "--project", PROJECT], {
        KMSD_DATABASE_URL: "postgres://postgres:hunter2@127.0.0.1:1/test?schema=nowhere",
        KMSD_ROOT_KEY: TEST_ROOT_KEY,
        KMSD_DATA_DIR: dir,
      });

      expect(done.code).toBe(1);
      expect(done.stderr).toMatch(/the key store is unavailable/);
      expect(done.stderr + done.stdout).not.toContain("hunter2");
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      await removeDir(dir);
    }
  });
});
