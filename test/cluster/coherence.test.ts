import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postJson, signedHeaders } from "../audit/cli-helpers.js";
import { createKeyRest, PROJECT, rest } from "../store/populated-store.js";
import { freshSchema, type TestSchema } from "../support/postgres.js";
import {
  Cluster,
  cipherVersion,
  errorCode,
  type Instance,
  msUntil,
  post,
} from "./cluster-helpers.js";

/**
 * Two kmsd processes on one PostgreSQL schema: what one of them (or the
 * CLI) changes, the other acts on within one second, even for keys,
 * credentials and tokens it holds in its caches.
 */

const COHERENCE_MS = 1000;

let schema: TestSchema;
let cluster: Cluster;
let a: Instance;
let b: Instance;
let token: string;
const measured: Record<string, number> = {};

/**
 * Polling the change feed only once a minute: what arrives within a second
 * arrived by LISTEN/NOTIFY (polling is the fallback for a lost listener).
 */
const NOTIFY_ONLY = { KMSD_CHANGE_POLL_MS: "60000" };

beforeAll(async () => {
  schema = freshSchema("kmsd_coherence");
  cluster = new Cluster(schema.url);
  a = await cluster.start(NOTIFY_ONLY);
  token = await cluster.adminToken();
  b = await cluster.start(NOTIFY_ONLY);
}, 60_000);

afterAll(async () => {
  await cluster?.close();
  await schema?.drop();
  // The figures the report and docs/deployment.md quote.
  console.log(`coherence across instances (ms): ${JSON.stringify(measured)}`);
});

/** Encrypts on the instance; the answer as it comes. */
function encrypt(instance: Instance, keyId: string) {
  return post(instance, token, "encrypt-data", { key_id: keyId, plain_text: "coherent" });
}

/** A new key, already in B's cache (B encrypted with it). */
async function keyCachedOnB(alias: string): Promise<string> {
  const keyId = await createKeyRest(a, token, alias);
  const warm = await encrypt(b, keyId);
  expect(warm.status, warm.text).toBe(200);
  return keyId;
}

async function expectWithinASecond(what: string, check: () => Promise<boolean>): Promise<void> {
  const ms = await msUntil(check, 5000, what);
  measured[what] = Math.round(ms);
  expect(ms, what).toBeLessThan(COHERENCE_MS);
}

describe("a key changed on instance A", () => {
  it("disabled: B refuses it within a second, and uses it again within a second of enabling", async () => {
    const keyId = await keyCachedOnB("coherence-disable");
    expect((await post(a, token, "disable-key", { key_id: keyId })).status).toBe(200);
    await expectWithinASecond(
      "disable",
      async () => errorCode(await encrypt(b, keyId)) === "KMS.0209",
    );
    expect((await post(a, token, "enable-key", { key_id: keyId })).status).toBe(200);
    await expectWithinASecond("enable", async () => (await encrypt(b, keyId)).status === 200);
  });

  it("scheduled for deletion: B refuses it within a second", async () => {
    const keyId = await keyCachedOnB("coherence-delete");
    const scheduled = await post(a, token, "schedule-key-deletion", {
      key_id: keyId,
      pending_days: "7",
    });
    expect(scheduled.status, scheduled.text).toBe(200);
    await expectWithinASecond(
      "schedule deletion",
      async () => errorCode(await encrypt(b, keyId)) === "KMS.0210",
    );
  });

  it("rotated: B encrypts with the new version within a second and still decrypts the old", async () => {
    const keyId = await keyCachedOnB("coherence-rotate");
    const before = await encrypt(b, keyId);
    const oldCipher = String((before.json as { cipher_text: string }).cipher_text);
    expect(cipherVersion(oldCipher)).toBe(1);
    expect((await post(a, token, "rotate-on-demand", { key_id: keyId })).status).toBe(200);
    await expectWithinASecond("rotate", async () => {
      const answer = await encrypt(b, keyId);
      return cipherVersion(String((answer.json as { cipher_text: string }).cipher_text)) === 2;
    });
    const old = await post(b, token, "decrypt-data", { cipher_text: oldCipher });
    expect(old.status, old.text).toBe(200);
  });
});

describe("a credential or token changed with the CLI", () => {
  it("a disabled access key is refused by both instances within a second", async () => {
    const credential = await cluster.cli<{ access_key: string; secret_key: string }>([
      "credentials",
      "create",
      "--project",
      PROJECT,
      "--role",
      "user",
    ]);
    const signedList = async (instance: Instance) => {
      const url = rest(instance, "list-keys");
      const body = JSON.stringify({ limit: "1" });
      return (await postJson(url, body, signedHeaders(credential, url, body))).status;
    };
    // Both have authenticated it, so both hold it in their caches.
    expect(await signedList(a)).toBe(200);
    expect(await signedList(b)).toBe(200);
    await cluster.cli(["credentials", "disable", "--access-key", credential.access_key]);
    await expectWithinASecond("credential disable", async () => (await signedList(b)) === 401);
    expect(await signedList(a)).toBe(401);
  });

  it("a revoked token is refused by both instances within a second", async () => {
    const issued = await cluster.cli<{ token: string; token_id: string }>([
      "tokens",
      "create",
      "--project",
      PROJECT,
      "--role",
      "user",
    ]);
    const list = async (instance: Instance) =>
      (
        await postJson(
          rest(instance, "list-keys"),
          { limit: "1" },
          { "x-auth-token": issued.token },
        )
      ).status;
    expect(await list(a)).toBe(200);
    expect(await list(b)).toBe(200);
    await cluster.cli(["tokens", "revoke", "--token-id", issued.token_id]);
    await expectWithinASecond("token revoke", async () => (await list(b)) === 401);
    expect(await list(a)).toBe(401);
  });
});
