import { randomUUID } from "node:crypto";
import http from "node:http";
import http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningKmsd, removeDir, startKmsd } from "../support/kmsd.js";
import {
  createKeyRest,
  encrypt,
  expectError,
  expectFlatError,
  expectOk,
  JSON_CONTENT_TYPE,
  kms,
  parseRawResponse,
  type Reply,
  request,
  slowUpload,
  str,
  tokenFor,
  UUID,
} from "./rest-helpers.js";

const DAY_MS = 24 * 60 * 60 * 1000;
const MAX_BODY = 64 * 1024;

/** Every field describe-key reports, in Huawei's string forms. */
const KEY_INFO_FIELDS = [
  "key_id",
  "domain_id",
  "key_alias",
  "realm",
  "key_spec",
  "key_usage",
  "key_description",
  "creation_date",
  "scheduled_deletion_date",
  "key_state",
  "default_key_flag",
  "key_type",
  "expiration_time",
  "origin",
  "key_rotation_enabled",
  "sys_enterprise_project_id",
  "keystore_id",
].sort();

let kmsd: RunningKmsd;
let url: string;

beforeAll(async () => {
  kmsd = await startKmsd();
  url = kmsd.url;
});
afterAll(async () => {
  await kmsd.stop();
  await removeDir(kmsd.config.dataDir);
});

function call(
  project: string,
  operation: string,
  body?: unknown,
  method?: string,
  token?: string | null,
) {
  return kms(kmsd, project, operation, body, {
    ...(method === undefined ? {} : { method }),
    ...(token === undefined ? {} : { token }),
  });
}

async function describeKey(project: string, keyId: string): Promise<Record<string, unknown>> {
  const body = expectOk(await call(project, "describe-key", { key_id: keyId }));
  return (body as { key_info: Record<string, unknown> }).key_info;
}

/** A reply's raw body with the given key ids masked, to compare two refusals byte for byte. */
function masked(reply: Reply, ...ids: string[]): string {
  let text = reply.text;
  for (const id of ids) text = text.replaceAll(id, "<id>");
  return text;
}

describe("the seed example", () => {
  it("encrypt-data answers exactly {key_id, cipher_text} and decrypt-data gives 12345678 back", async () => {
    const keyId = await createKeyRest(kmsd, "p1", "seed");
    const encrypted = await call("p1", "encrypt-data", { key_id: keyId, plain_text: "12345678" });
    const body = expectOk(encrypted);
    expect(body).toEqual({
      key_id: keyId,
      cipher_text: expect.stringMatching(/^[A-Za-z0-9+/]+=*$/),
    });
    const cipherText = str(body, "cipher_text");
    // Self-describing and within Huawei's 140-byte overhead budget.
    expect(Buffer.from(cipherText, "base64").length).toBeLessThanOrEqual(8 + 140);

    const decrypted = await call("p1", "decrypt-data", { cipher_text: cipherText });
    expect(expectOk(decrypted)).toEqual({
      key_id: keyId,
      plain_text: "12345678",
      plain_text_base64: "MTIzNDU2Nzg=",
    });
  });

  it("gives a different cipher_text each time for the same plaintext", async () => {
    const keyId = await createKeyRest(kmsd, "p1", "seed-twice");
    const first = await encrypt(kmsd, "p1", keyId, "12345678");
    const second = await encrypt(kmsd, "p1", keyId, "12345678");
    expect(first).not.toBe(second);
  });
});

describe("create-key and describe-key", () => {
  it("create-key answers exactly {key_info: {key_id, domain_id}}", async () => {
    const reply = await call("pcreate", "create-key", { key_alias: "first" });
    expect(expectOk(reply)).toEqual({
      key_info: { key_id: expect.stringMatching(UUID), domain_id: "pcreate" },
    });
  });

  it("describe-key reports every Huawei field with its defaults", async () => {
    const before = Date.now();
    const keyId = await createKeyRest(kmsd, "pcreate", "described");
    const after = Date.now();
    const info = await describeKey("pcreate", keyId);
    expect(Object.keys(info).sort()).toEqual(KEY_INFO_FIELDS);
    expect(info).toEqual({
      key_id: keyId,
      domain_id: "pcreate",
      key_alias: "described",
      realm: "kmsd-local",
      key_spec: "AES_256",
      key_usage: "ENCRYPT_DECRYPT",
      key_description: "",
      creation_date: expect.stringMatching(/^[0-9]{13}$/),
      scheduled_deletion_date: "",
      key_state: "2",
      default_key_flag: "0",
      key_type: "1",
      expiration_time: "",
      origin: "kms",
      key_rotation_enabled: "false",
      sys_enterprise_project_id: "0",
      keystore_id: "0",
    });
    const created = Number(info.creation_date);
    expect(created).toBeGreaterThanOrEqual(before);
    expect(created).toBeLessThanOrEqual(after);
  });

  it("create-key takes the explicit defaults, a description and an enterprise project", async () => {
    const keyId = await createKeyRest(kmsd, "pcreate", "team/app:key_1-x", {
      key_spec: "AES_256",
      key_usage: "ENCRYPT_DECRYPT",
      origin: "kms",
      key_description: "the app's key é",
      enterprise_project_id: "ep-1",
      sequence: randomUUID(),
    });
    const info = await describeKey("pcreate", keyId);
    expect(info).toMatchObject({
      key_id: keyId,
      key_alias: "team/app:key_1-x",
      key_spec: "AES_256",
      key_usage: "ENCRYPT_DECRYPT",
      origin: "kms",
      key_description: "the app's key é",
      sys_enterprise_project_id: "ep-1",
      key_state: "2",
    });
  });

  it("ignores unknown JSON fields", async () => {
    const created = await call("pcreate", "create-key", {
      key_alias: "unknown-fields",
      no_such_field: 1,
      nested: { deeper: [1, 2, 3] },
    });
    const keyId = str(expectOk(created), "key_info", "key_id");
    const encrypted = await call("pcreate", "encrypt-data", {
      key_id: keyId,
      plain_text: "x",
      additional_field: "ignored",
      plain_text_extra: null,
    });
    const cipherText = str(expectOk(encrypted), "cipher_text");
    const decrypted = await call("pcreate", "decrypt-data", {
      cipher_text: cipherText,
      whatever: { a: 1 },
    });
    expect(expectOk(decrypted)).toEqual({
      key_id: keyId,
      plain_text: "x",
      plain_text_base64: "eA==",
    });
  });

  it("accepts a body project_id equal to the URL's and a trailing slash", async () => {
    const keyId = await createKeyRest(kmsd, "pcreate", "same-project", { project_id: "pcreate" });
    const reply = await request(
      url,
      "/v1.0/pcreate/kms/describe-key/",
      { key_id: keyId },
      { headers: { "x-auth-token": await tokenFor(kmsd, "pcreate") } },
    );
    expect(str(expectOk(reply), "key_info", "key_id")).toBe(keyId);
  });
});

describe("list-keys", () => {
  const project = "plist";
  const created: string[] = [];
  let otherProjectKey: string;

  beforeAll(async () => {
    for (let index = 0; index < 5; index++) {
      created.push(await createKeyRest(kmsd, project, `list-${index}`));
    }
    otherProjectKey = await createKeyRest(kmsd, "plist-other", "list-0");
  });

  async function list(body: Record<string, unknown>) {
    const reply = await call(project, "list-keys", body);
    const page = expectOk(reply) as {
      keys: string[];
      key_details: Record<string, unknown>[];
      next_marker: string;
      truncated: string;
      total: number;
    };
    expect(Object.keys(page).sort()).toEqual([
      "key_details",
      "keys",
      "next_marker",
      "total",
      "truncated",
    ]);
    // keys and key_details describe the same keys in the same order.
    expect(page.key_details.map((info) => info.key_id)).toEqual(page.keys);
    for (const info of page.key_details) expect(Object.keys(info).sort()).toEqual(KEY_INFO_FIELDS);
    return page;
  }

  it("lists every key of the project, and only those, on one page by default", async () => {
    const page = await list({});
    expect(page.keys).toHaveLength(5);
    expect(new Set(page.keys)).toEqual(new Set(created));
    expect(page.keys).not.toContain(otherProjectKey);
    expect(page.truncated).toBe("false");
    expect(page.next_marker).toBe("");
    expect(page.total).toBe(5);
    const detail = page.key_details.find((info) => info.key_id === created[2]);
    expect(detail).toMatchObject({ key_alias: "list-2", domain_id: project, key_state: "2" });
  });

  it("pages with limit and marker through every key exactly once", async () => {
    const all = (await list({})).keys;
    const pages: string[][] = [];
    let marker: string | undefined;
    for (let guard = 0; guard < 10; guard++) {
      const page = await list(marker === undefined ? { limit: "2" } : { limit: "2", marker });
      pages.push(page.keys);
      expect(page.total).toBe(5);
      if (pages.length < 3) {
        expect(page.keys).toHaveLength(2);
        expect(page.truncated).toBe("true");
        expect(page.next_marker).not.toBe("");
        marker = page.next_marker;
      } else {
        expect(page.keys).toHaveLength(1);
        expect(page.truncated).toBe("false");
        expect(page.next_marker).toBe("");
        break;
      }
    }
    expect(pages).toHaveLength(3);
    expect(pages.flat()).toEqual(all);
  });

  it("filters by key_state and key_spec", async () => {
    const disabled = created[1] ?? "";
    expectOk(await call(project, "disable-key", { key_id: disabled }));
    try {
      const onlyDisabled = await list({ key_state: "3" });
      expect(onlyDisabled.keys).toEqual([disabled]);
      expect(onlyDisabled.total).toBe(1);
      expect(onlyDisabled.key_details[0]?.key_state).toBe("3");

      const enabled = await list({ key_state: "2" });
      expect(new Set(enabled.keys)).toEqual(new Set(created.filter((id) => id !== disabled)));
      expect(enabled.total).toBe(4);

      const pending = await list({ key_state: "4" });
      expect(pending).toMatchObject({ keys: [], key_details: [], total: 0, truncated: "false" });

      const enabledPaged = await list({ key_state: "2", limit: "3" });
      expect(enabledPaged.keys).toHaveLength(3);
      expect(enabledPaged).toMatchObject({ total: 4, truncated: "true" });
      expect(enabledPaged.keys).not.toContain(disabled);

      for (const spec of ["AES_256", "ALL"]) {
        const bySpec = await list({ key_spec: spec });
        expect(new Set(bySpec.keys)).toEqual(new Set(created));
        expect(bySpec.total).toBe(5);
      }
      const sm4 = await list({ key_spec: "SM4" });
      expect(sm4).toMatchObject({ keys: [], total: 0 });

      const both = await list({ key_spec: "AES_256", key_state: "3" });
      expect(both.keys).toEqual([disabled]);
    } finally {
      expectOk(await call(project, "enable-key", { key_id: disabled }));
    }
  });

  it("an empty project lists nothing", async () => {
    const reply = await call("pempty", "list-keys", {});
    expect(expectOk(reply)).toEqual({
      keys: [],
      key_details: [],
      next_marker: "",
      truncated: "false",
      total: 0,
    });
  });

  it.each([
    ["limit 0", { limit: "0" }],
    ["limit 1001", { limit: "1001" }],
    ["limit not a number", { limit: "ten" }],
    ["an invalid marker", { marker: "not a marker!" }],
    ["a marker that is not base64url of a position", { marker: "AAAA" }],
    ["an unknown key_state", { key_state: "9" }],
    ["an unknown key_spec", { key_spec: "AES_512" }],
  ])("refuses %s with KMS.0308", async (_name, body) => {
    expectError(await call(project, "list-keys", body), 400, "KMS.0308");
  });
});

describe("key state changes", () => {
  const project = "pstate";

  it("disable-key and enable-key answer {key_info: {key_id, key_state}}", async () => {
    const keyId = await createKeyRest(kmsd, project, "toggle");
    expect(expectOk(await call(project, "disable-key", { key_id: keyId }))).toEqual({
      key_info: { key_id: keyId, key_state: "3" },
    });
    expect((await describeKey(project, keyId)).key_state).toBe("3");
    expect(expectOk(await call(project, "enable-key", { key_id: keyId }))).toEqual({
      key_info: { key_id: keyId, key_state: "2" },
    });
    expect((await describeKey(project, keyId)).key_state).toBe("2");
    // Both are idempotent.
    expect(expectOk(await call(project, "enable-key", { key_id: keyId }))).toEqual({
      key_info: { key_id: keyId, key_state: "2" },
    });
  });

  it("schedule-key-deletion and cancel-key-deletion answer {key_id, key_state}", async () => {
    const keyId = await createKeyRest(kmsd, project, "doomed");
    const before = Date.now();
    const scheduled = await call(project, "schedule-key-deletion", {
      key_id: keyId,
      pending_days: "7",
    });
    const after = Date.now();
    expect(expectOk(scheduled)).toEqual({ key_id: keyId, key_state: "4" });
    const info = await describeKey(project, keyId);
    expect(info.key_state).toBe("4");
    const deletion = Number(info.scheduled_deletion_date);
    expect(deletion).toBeGreaterThanOrEqual(before + 7 * DAY_MS);
    expect(deletion).toBeLessThanOrEqual(after + 7 * DAY_MS);

    const pendingList = expectOk(await call(project, "list-keys", { key_state: "4" }));
    expect((pendingList as { keys: string[] }).keys).toEqual([keyId]);

    expect(expectOk(await call(project, "cancel-key-deletion", { key_id: keyId }))).toEqual({
      key_id: keyId,
      key_state: "3",
    });
    const cancelled = await describeKey(project, keyId);
    expect(cancelled).toMatchObject({ key_state: "3", scheduled_deletion_date: "" });
    expect(expectOk(await call(project, "enable-key", { key_id: keyId }))).toEqual({
      key_info: { key_id: keyId, key_state: "2" },
    });
  });

  it("accepts pending_days 1096", async () => {
    const keyId = await createKeyRest(kmsd, project, "far");
    const reply = await call(project, "schedule-key-deletion", {
      key_id: keyId,
      pending_days: "1096",
    });
    expect(expectOk(reply)).toEqual({ key_id: keyId, key_state: "4" });
  });

  it("a pending-deletion key cannot be enabled, disabled or scheduled again (KMS.0210)", async () => {
    const keyId = await createKeyRest(kmsd, project, "pending-ops");
    expectOk(await call(project, "schedule-key-deletion", { key_id: keyId, pending_days: "30" }));
    for (const operation of ["enable-key", "disable-key"]) {
      expectError(await call(project, operation, { key_id: keyId }), 400, "KMS.0210");
    }
    expectError(
      await call(project, "schedule-key-deletion", { key_id: keyId, pending_days: "7" }),
      400,
      "KMS.0210",
    );
    expect((await describeKey(project, keyId)).key_state).toBe("4");
  });

  it("cancel-key-deletion on a key not pending deletion is KMS.0308", async () => {
    const keyId = await createKeyRest(kmsd, project, "not-pending");
    expectError(await call(project, "cancel-key-deletion", { key_id: keyId }), 400, "KMS.0308");
    expect((await describeKey(project, keyId)).key_state).toBe("2");
  });
});

describe("encrypt-data and decrypt-data", () => {
  const project = "pcrypto";
  let keyId: string;
  let otherKeyId: string;

  beforeAll(async () => {
    keyId = await createKeyRest(kmsd, project, "crypto");
    otherKeyId = await createKeyRest(kmsd, project, "crypto-other");
  });

  async function roundTrip(plainText: string, extra: Record<string, unknown> = {}) {
    const cipherText = await encrypt(kmsd, project, keyId, plainText, extra);
    const reply = await call(project, "decrypt-data", { cipher_text: cipherText, ...extra });
    return { cipherText, body: expectOk(reply) };
  }

  it.each([
    ["one byte", "a"],
    ["unicode", "héllo wörld 你好 😀"],
    ["4096 ASCII bytes", "x".repeat(4096)],
    ["4094 bytes + a 2-byte character", `${"x".repeat(4094)}é`],
    ["4093 bytes + a 3-byte character", `${"x".repeat(4093)}€`],
    ["4092 bytes + a 4-byte character", `${"x".repeat(4092)}😀`],
    ["JSON-looking text with quotes and newlines", '{"a": "b"}\n\t\\'],
  ])("round-trips %s", async (_name, plainText) => {
    const { cipherText, body } = await roundTrip(plainText);
    expect(body).toEqual({
      key_id: keyId,
      plain_text: plainText,
      plain_text_base64: Buffer.from(plainText, "utf8").toString("base64"),
    });
    // Huawei's limit on cipher_text: 5648 base64 characters for a 4096-byte plaintext.
    expect(cipherText.length).toBeLessThanOrEqual(5648);
  });

  it("binds an encryption_context; decrypt accepts the same pairs in any order", async () => {
    const cipherText = await encrypt(kmsd, project, keyId, "secret", {
      encryption_context: { tenant: "t1", resource: "r/1", é: "ü" },
    });
    const reply = await call(project, "decrypt-data", {
      cipher_text: cipherText,
      encryption_context: { é: "ü", resource: "r/1", tenant: "t1" },
    });
    expect(expectOk(reply)).toEqual({
      key_id: keyId,
      plain_text: "secret",
      plain_text_base64: Buffer.from("secret").toString("base64"),
    });
  });

  it("accepts an empty encryption_context as no context", async () => {
    const cipherText = await encrypt(kmsd, project, keyId, "none", { encryption_context: {} });
    const reply = await call(project, "decrypt-data", { cipher_text: cipherText });
    expect(str(expectOk(reply), "plain_text")).toBe("none");
  });

  it("accepts an encryption_context of exactly 8192 bytes", async () => {
    const context = { k: "v".repeat(8191) };
    const { body } = await roundTrip("ctx", { encryption_context: context });
    expect(str(body, "plain_text")).toBe("ctx");
  });

  it("decrypt-data accepts the ciphertext's own key_id", async () => {
    const cipherText = await encrypt(kmsd, project, keyId, "with key id");
    const reply = await call(project, "decrypt-data", { cipher_text: cipherText, key_id: keyId });
    expect(str(expectOk(reply), "plain_text")).toBe("with key id");
  });

  it("accepts a 36-character sequence", async () => {
    const reply = await call(project, "encrypt-data", {
      key_id: keyId,
      plain_text: "seq",
      sequence: randomUUID(),
    });
    expect(expectOk(reply)).toEqual({ key_id: keyId, cipher_text: expect.any(String) });
  });

  it("a ciphertext of one key does not decrypt as another's (KMS.2201)", async () => {
    const cipherText = await encrypt(kmsd, project, keyId, "mine");
    const reply = await call(project, "decrypt-data", {
      cipher_text: cipherText,
      key_id: otherKeyId,
    });
    expectError(reply, 400, "KMS.2201");
  });
});

describe("errors: routing and body", () => {
  it("an unknown path is 404 APIGW.0101 with the flat body and the request id", async () => {
    for (const path of [
      "/v1.0/p1/kms/no-such-operation",
      "/v1.0/p1/kms",
      "/v2.0/p1/kms/encrypt-data",
      "/",
      "/v1.0/p1/kms/encrypt-data/extra",
    ]) {
      const reply = await request(url, path, {});
      expectFlatError(reply, 404, "APIGW.0101");
    }
    expectFlatError(
      await request(url, "/nowhere", undefined, { method: "GET" }),
      404,
      "APIGW.0101",
    );
  });

  it("a request without a valid credential is 401 APIGW.0301 with the flat body", async () => {
    const body = { key_id: randomUUID(), plain_text: "a" };
    expectFlatError(await call("p1", "encrypt-data", body, undefined, null), 401, "APIGW.0301");
    expectFlatError(
      await call("p1", "encrypt-data", body, undefined, "not-a-token"),
      401,
      "APIGW.0301",
    );
  });

  it.each(["GET", "PUT", "DELETE", "PATCH"])(
    "%s on a real path is 405 KMS.0215",
    async (method) => {
      const body = method === "GET" || method === "DELETE" ? undefined : { key_id: "x" };
      const reply = await kms(kmsd, "p1", "encrypt-data", body, { method });
      const message = expectError(reply, 405, "KMS.0215");
      expect(message).toContain("POST");
    },
  );

  it("a 405 names the allowed method in an Allow header (RFC 9110 §15.5.6)", async () => {
    const reply = await kms(kmsd, "p1", "describe-key", undefined, { method: "GET" });
    expect(reply.status).toBe(405);
    expect(reply.headers.get("allow")).toBe("POST");
  });

  it.each([
    ["truncated JSON", '{"key_id": "abc"'],
    ["plain text", "key_id=abc"],
    ["a trailing comma", '{"plain_text": "a",}'],
    ["single quotes", "{'plain_text': 'a'}"],
  ])("a body that is not JSON (%s) is 400 KMS.0202", async (_name, raw) => {
    expectError(await call("p1", "encrypt-data", raw), 400, "KMS.0202");
  });

  it.each([
    ["an array", "[1, 2]"],
    ["a string", '"text"'],
    ["a number", "5"],
    ["null", "null"],
    ["true", "true"],
  ])("a JSON body that is not an object (%s) is 400 KMS.0214", async (_name, raw) => {
    expectError(await call("p1", "encrypt-data", raw), 400, "KMS.0214");
  });

  it("an empty body is an empty object: KMS.0204 for the missing fields", async () => {
    const message = expectError(await call("p1", "encrypt-data", ""), 400, "KMS.0204");
    expect(message).toMatch(/key_id|plain_text/);
  });
});

describe("errors: request body size", () => {
  const exactly = (size: number, keyId: string) => {
    const base = JSON.stringify({ key_id: keyId, plain_text: "x", pad: "" });
    const body = `${base.slice(0, -2)}${"p".repeat(size - Buffer.byteLength(base))}"}`;
    expect(Buffer.byteLength(body)).toBe(size);
    return body;
  };

  it("a body of exactly 64 KiB is read; one byte more is 400 KMS.0203", async () => {
    const keyId = await createKeyRest(kmsd, "psize", "size");
    expectOk(await call("psize", "encrypt-data", exactly(MAX_BODY, keyId)));
    expectError(await call("psize", "encrypt-data", exactly(MAX_BODY + 1, keyId)), 400, "KMS.0203");
  });

  it("a chunked body larger than 64 KiB is 400 KMS.0203", async () => {
    const reply = await new Promise<{
      status: number;
      headers: http.IncomingHttpHeaders;
      body: string;
    }>((resolve, reject) => {
      const req = http.request(
        `${url}/v1.0/psize/kms/encrypt-data`,
        { method: "POST", headers: { "content-type": "application/json" } },
        (response) => {
          const chunks: Buffer[] = [];
          response.on("data", (chunk: Buffer) => chunks.push(chunk));
          response.on("end", () =>
            resolve({
              status: response.statusCode ?? 0,
              headers: response.headers,
              body: Buffer.concat(chunks).toString("utf8"),
            }),
          );
          response.on("error", reject);
        },
      );
      req.on("error", () => {});
      // No Content-Length: Node sends Transfer-Encoding: chunked.
      req.write(`{"plain_text":"${"a".repeat(40_000)}`);
      req.write(`${"b".repeat(40_000)}"}`);
      req.end();
    });
    expect(reply.status).toBe(400);
    expect(JSON.parse(reply.body)).toEqual({
      error: { error_code: "KMS.0203", error_msg: expect.any(String) },
    });
    expect(reply.headers["x-request-id"]).toMatch(UUID);
  });

  it("stops reading an announced 100 MB body: answers KMS.0203 and closes at once", async () => {
    const announced = 100 * 1024 * 1024;
    const exchange = await slowUpload(
      kmsd.port,
      "POST /v1.0/psize/kms/encrypt-data HTTP/1.1\r\nHost: kmsd\r\n" +
        `Content-Type: application/json\r\nContent-Length: ${announced}\r\n\r\n`,
      (sent) => (sent < announced ? Buffer.alloc(16 * 1024, 0x61) : undefined),
      { intervalMs: 5, waitMs: 10_000 },
    );
    expect(exchange.closed).toBe(true);
    // At ~3 MB/s, 100 MB would take half a minute: the server hung up long before.
    expect(exchange.elapsedMs).toBeLessThan(5_000);
    expect(exchange.sentAtClose).toBeLessThan(8 * 1024 * 1024);
    expect(exchange.sentAtResponse).toBeGreaterThanOrEqual(0);
    const response = parseRawResponse(exchange.response);
    expect(response.status).toBe(400);
    expect(response.headers["x-request-id"]).toMatch(UUID);
    expect(response.headers.connection).toBe("close");
    expect(JSON.parse(response.body)).toEqual({
      error: { error_code: "KMS.0203", error_msg: expect.any(String) },
    });
  });

  it("stops reading an endless chunked body: answers KMS.0203 and closes at once", async () => {
    const chunk = Buffer.alloc(16 * 1024, 0x61);
    const frame = Buffer.concat([
      Buffer.from(`${chunk.length.toString(16)}\r\n`),
      chunk,
      Buffer.from("\r\n"),
    ]);
    const exchange = await slowUpload(
      kmsd.port,
      "POST /v1.0/psize/kms/encrypt-data HTTP/1.1\r\nHost: kmsd\r\n" +
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
      () => frame,
      { intervalMs: 5, waitMs: 10_000 },
    );
    expect(exchange.closed).toBe(true);
    expect(exchange.elapsedMs).toBeLessThan(5_000);
    expect(exchange.sentAtClose).toBeLessThan(8 * 1024 * 1024);
    // It had to read past 64 KiB to know.
    expect(exchange.sentAtResponse).toBeGreaterThan(MAX_BODY);
    const response = parseRawResponse(exchange.response);
    expect(response.status).toBe(400);
    expect(response.headers["x-request-id"]).toMatch(UUID);
    expect(JSON.parse(response.body)).toEqual({
      error: { error_code: "KMS.0203", error_msg: expect.any(String) },
    });
  });
});

describe("errors: request fields", () => {
  const project = "pfields";
  let keyId: string;

  beforeAll(async () => {
    keyId = await createKeyRest(kmsd, project, "fields");
  });

  it.each([
    ["create-key without key_alias", "create-key", {}],
    ["describe-key without key_id", "describe-key", {}],
    ["enable-key without key_id", "enable-key", {}],
    ["disable-key without key_id", "disable-key", {}],
    ["schedule-key-deletion without pending_days", "schedule-key-deletion", "KEY"],
    ["cancel-key-deletion without key_id", "cancel-key-deletion", {}],
    ["encrypt-data without plain_text", "encrypt-data", "KEY"],
    ["encrypt-data without key_id", "encrypt-data", { plain_text: "a" }],
    ["encrypt-data with key_id null", "encrypt-data", { key_id: null, plain_text: "a" }],
    ["decrypt-data without cipher_text", "decrypt-data", {}],
  ])("%s is 400 KMS.0204", async (_name, operation, body) => {
    const request = body === "KEY" ? { key_id: keyId } : body;
    expectError(await call(project, operation, request), 400, "KMS.0204");
  });

  const badProjects = ["p.1", "p%201", "p!", "x".repeat(65)];

  it("a project id in the URL that breaks its pattern is 400 KMS.0201", async () => {
    for (const bad of badProjects) {
      // A credential of that very project (only the store can issue one): the URL alone is wrong.
      const token = await tokenFor(kmsd, decodeURIComponent(bad));
      const reply = await kms(kmsd, bad, "describe-key", { key_id: keyId }, { token });
      expectError(reply, 400, "KMS.0201");
    }
    expectError(
      await call("x".repeat(65), "encrypt-data", { key_id: keyId, plain_text: "a" }),
      400,
      "KMS.0201",
    );
  });

  it("a malformed project id in the URL is KMS.0201 for a caller of another project too", async () => {
    const token = await tokenFor(kmsd, project);
    for (const bad of badProjects) {
      const reply = await kms(kmsd, bad, "describe-key", { key_id: keyId }, { token });
      expectError(reply, 400, "KMS.0201");
    }
  });

  it("a body project_id that differs from the URL's is 400 KMS.0201", async () => {
    for (const other of ["pother", 5, ""]) {
      const reply = await call(project, "encrypt-data", {
        project_id: other,
        key_id: keyId,
        plain_text: "a",
      });
      expectError(reply, 400, "KMS.0201");
    }
  });

  it.each([
    ["not a UUID", "not-a-key"],
    ["upper case", "0D0466B0-E727-4D9C-B35D-F84BB474A37F"],
    ["35 characters", "0d0466b0-e727-4d9c-b35d-f84bb474a37"],
    ["braces", "{0d0466b0-e727-4d9c-b35d-f84bb474a37f}"],
  ])("a key_id that is %s is 400 KMS.0205", async (_name, bad) => {
    for (const operation of ["describe-key", "enable-key", "disable-key", "cancel-key-deletion"]) {
      expectError(await call(project, operation, { key_id: bad }), 400, "KMS.0205");
    }
    expectError(
      await call(project, "encrypt-data", { key_id: bad, plain_text: "a" }),
      400,
      "KMS.0205",
    );
    expectError(
      await call(project, "schedule-key-deletion", { key_id: bad, pending_days: "7" }),
      400,
      "KMS.0205",
    );
    const cipherText = await encrypt(kmsd, project, keyId, "a");
    expectError(
      await call(project, "decrypt-data", { cipher_text: cipherText, key_id: bad }),
      400,
      "KMS.0205",
    );
  });

  it.each([
    ["35 characters", "x".repeat(35)],
    ["37 characters", "x".repeat(37)],
    ["a number", 123],
  ])("a sequence of %s is 400 KMS.0206", async (_name, sequence) => {
    expectError(
      await call(project, "encrypt-data", { key_id: keyId, plain_text: "a", sequence }),
      400,
      "KMS.0206",
    );
    expectError(await call(project, "describe-key", { key_id: keyId, sequence }), 400, "KMS.0206");
  });

  it.each([
    ["an empty key", { "": "v" }],
    ["more than 8192 bytes", { k: "v".repeat(8192) }],
    ["more than 8192 bytes counted in UTF-8", { k: "é".repeat(4096) }],
    ["a value that is not a string", { k: 1 }],
    ["a string", "k=v"],
    ["an array", [["k", "v"]]],
  ])("an encryption_context with %s is 400 KMS.0208", async (_name, context) => {
    expectError(
      await call(project, "encrypt-data", {
        key_id: keyId,
        plain_text: "a",
        encryption_context: context,
      }),
      400,
      "KMS.0208",
    );
    const cipherText = await encrypt(kmsd, project, keyId, "a");
    expectError(
      await call(project, "decrypt-data", { cipher_text: cipherText, encryption_context: context }),
      400,
      "KMS.0208",
    );
  });

  it.each([
    ["4097 ASCII bytes", "x".repeat(4097)],
    ["4095 bytes + a 2-byte character (4096 characters)", `${"x".repeat(4095)}é`],
    ["4094 bytes + a 3-byte character", `${"x".repeat(4094)}€`],
    ["4093 bytes + a 4-byte character", `${"x".repeat(4093)}😀`],
    ["4096 two-byte characters", "é".repeat(4096)],
    ["a number", 5],
    ["an object", { text: "a" }],
  ])("a plain_text of %s is 400 KMS.2101", async (_name, plainText) => {
    expectError(
      await call(project, "encrypt-data", { key_id: keyId, plain_text: plainText }),
      400,
      "KMS.2101",
    );
  });

  it("a field of the wrong JSON type answers that field's code", async () => {
    expectError(await call(project, "describe-key", { key_id: 5 }), 400, "KMS.0205");
    expectError(await call(project, "create-key", { key_alias: true }), 400, "KMS.0308");
    expectError(await call(project, "decrypt-data", { cipher_text: 5 }), 400, "KMS.2201");
    expectError(await call(project, "decrypt-data", { cipher_text: ["a"] }), 400, "KMS.2201");
  });

  it.each([
    ["an alias with a space", { key_alias: "bad alias" }],
    ["an alias ending in /default", { key_alias: "app/default" }],
    ["an alias of 256 characters", { key_alias: "a".repeat(256) }],
    ["key_spec RSA_2048 (known, unsupported)", { key_alias: "rsa", key_spec: "RSA_2048" }],
    ["key_spec SM4 (known, unsupported)", { key_alias: "sm4", key_spec: "SM4" }],
    ["an unknown key_spec", { key_alias: "bogus", key_spec: "AES_512" }],
    ["key_usage SIGN_VERIFY", { key_alias: "sign", key_usage: "SIGN_VERIFY" }],
    ["origin external", { key_alias: "ext", origin: "external" }],
    ["a description of 256 characters", { key_alias: "long", key_description: "d".repeat(256) }],
  ])("create-key with %s is 400 KMS.0308", async (_name, body) => {
    expectError(await call(project, "create-key", body), 400, "KMS.0308");
  });

  it("create-key with an alias already used in the project is 400 KMS.0308", async () => {
    await createKeyRest(kmsd, project, "taken");
    const message = expectError(
      await call(project, "create-key", { key_alias: "taken" }),
      400,
      "KMS.0308",
    );
    expect(message).toContain("taken");
    // The same alias in another project is fine.
    await createKeyRest(kmsd, "pfields-other", "taken");
  });

  it.each(["6", "0", "1097", "-7", "7.5", "seven", "99999"])(
    "schedule-key-deletion with pending_days %s is 400 KMS.0308",
    async (pendingDays) => {
      const reply = await call(project, "schedule-key-deletion", {
        key_id: keyId,
        pending_days: pendingDays,
      });
      expectError(reply, 400, "KMS.0308");
      expect((await describeKey(project, keyId)).key_state).toBe("2");
    },
  );
});

describe("errors: keys that do not exist or are not usable", () => {
  const project = "pkeys";
  let foreignKey: string;

  beforeAll(async () => {
    foreignKey = await createKeyRest(kmsd, "pkeys-foreign", "foreign");
  });

  const operations: [string, Record<string, unknown>][] = [
    ["describe-key", {}],
    ["enable-key", {}],
    ["disable-key", {}],
    ["schedule-key-deletion", { pending_days: "7" }],
    ["cancel-key-deletion", {}],
    ["encrypt-data", { plain_text: "a" }],
  ];

  it.each(operations)(
    "%s: an unknown key and another project's key are the same 404 KMS.0207",
    async (operation, extra) => {
      const unknown = randomUUID();
      const missing = await call(project, operation, { key_id: unknown, ...extra });
      const foreign = await call(project, operation, { key_id: foreignKey, ...extra });
      const message = expectError(missing, 404, "KMS.0207");
      expect(message).toContain(unknown);
      expectError(foreign, 404, "KMS.0207");
      expect(masked(foreign, foreignKey)).toBe(masked(missing, unknown));
    },
  );

  it("another project's key is untouched by the refused calls", async () => {
    const info = await describeKey("pkeys-foreign", foreignKey);
    expect(info).toMatchObject({ key_state: "2", scheduled_deletion_date: "" });
  });

  it("decrypt-data of another project's ciphertext reads as one naming an unknown key", async () => {
    const foreignCipher = await encrypt(kmsd, "pkeys-foreign", foreignKey, "theirs");
    const bytes = Buffer.from(foreignCipher, "base64");
    const unknownKey = randomUUID();
    Buffer.from(unknownKey.replaceAll("-", ""), "hex").copy(bytes, 2);
    const foreign = await call(project, "decrypt-data", { cipher_text: foreignCipher });
    const missing = await call(project, "decrypt-data", { cipher_text: bytes.toString("base64") });
    expectError(foreign, 400, "KMS.2201");
    expectError(missing, 400, "KMS.2201");
    expect(masked(foreign, foreignKey)).toBe(masked(missing, unknownKey));
    expect(foreign.text).not.toContain("theirs");
  });

  it("a disabled key refuses encrypt-data and decrypt-data with 400 KMS.0209", async () => {
    const keyId = await createKeyRest(kmsd, project, "disabled");
    const cipherText = await encrypt(kmsd, project, keyId, "before");
    expectOk(await call(project, "disable-key", { key_id: keyId }));
    expectError(
      await call(project, "encrypt-data", { key_id: keyId, plain_text: "a" }),
      400,
      "KMS.0209",
    );
    expectError(await call(project, "decrypt-data", { cipher_text: cipherText }), 400, "KMS.0209");
    expectOk(await call(project, "enable-key", { key_id: keyId }));
    const decrypted = await call(project, "decrypt-data", { cipher_text: cipherText });
    expect(str(expectOk(decrypted), "plain_text")).toBe("before");
  });

  it("a key pending deletion refuses encrypt-data and decrypt-data with 400 KMS.0210", async () => {
    const keyId = await createKeyRest(kmsd, project, "pending");
    const cipherText = await encrypt(kmsd, project, keyId, "before");
    expectOk(await call(project, "schedule-key-deletion", { key_id: keyId, pending_days: "7" }));
    expectError(
      await call(project, "encrypt-data", { key_id: keyId, plain_text: "a" }),
      400,
      "KMS.0210",
    );
    expectError(await call(project, "decrypt-data", { cipher_text: cipherText }), 400, "KMS.0210");
    // Cancelled, the key is disabled (KMS.0209) until enabled again.
    expectOk(await call(project, "cancel-key-deletion", { key_id: keyId }));
    expectError(await call(project, "decrypt-data", { cipher_text: cipherText }), 400, "KMS.0209");
    expectOk(await call(project, "enable-key", { key_id: keyId }));
    const decrypted = await call(project, "decrypt-data", { cipher_text: cipherText });
    expect(str(expectOk(decrypted), "plain_text")).toBe("before");
  });
});

describe("errors: invalid cipher_text (KMS.2201)", () => {
  const project = "pcipher";
  let keyId: string;
  let cipherText: string;

  beforeAll(async () => {
    keyId = await createKeyRest(kmsd, project, "cipher");
    cipherText = await encrypt(kmsd, project, keyId, "12345678");
  });

  it("the untouched ciphertext decrypts (control)", async () => {
    const reply = await call(project, "decrypt-data", { cipher_text: cipherText });
    expect(str(expectOk(reply), "plain_text")).toBe("12345678");
  });

  it.each(["01", "80", "ff"])(
    "every single byte XORed with 0x%s is 400 KMS.2201, never 404 or 500",
    async (hex) => {
      const mask = Number.parseInt(hex, 16);
      const bytes = Buffer.from(cipherText, "base64");
      expect(bytes.length).toBeGreaterThan(50);
      const failures: string[] = [];
      for (let index = 0; index < bytes.length; index++) {
        const flipped = Buffer.from(bytes);
        flipped[index] = (flipped[index] ?? 0) ^ mask;
        const reply = await call(project, "decrypt-data", {
          cipher_text: flipped.toString("base64"),
        });
        const code = (reply.json as { error?: { error_code?: string } } | undefined)?.error
          ?.error_code;
        if (reply.status !== 400 || code !== "KMS.2201") {
          failures.push(`byte ${index}: ${reply.status} ${reply.text}`);
        }
      }
      expect(failures).toEqual([]);
    },
  );

  it("a truncated ciphertext is 400 KMS.2201", async () => {
    const bytes = Buffer.from(cipherText, "base64");
    for (const length of [bytes.length - 1, bytes.length - 16, 67, 66, 50, 10, 1]) {
      const truncated = bytes.subarray(0, length).toString("base64");
      expectError(await call(project, "decrypt-data", { cipher_text: truncated }), 400, "KMS.2201");
    }
    // Chopped as text, too.
    expectError(
      await call(project, "decrypt-data", { cipher_text: cipherText.slice(0, -4) }),
      400,
      "KMS.2201",
    );
  });

  it("an extended ciphertext is 400 KMS.2201", async () => {
    const bytes = Buffer.concat([Buffer.from(cipherText, "base64"), Buffer.from([0])]);
    expectError(
      await call(project, "decrypt-data", { cipher_text: bytes.toString("base64") }),
      400,
      "KMS.2201",
    );
  });

  it.each([
    ["not base64", "!".repeat(120)],
    ["an empty string", ""],
    ["too long", "A".repeat(5652)],
    ["base64 of random bytes", Buffer.alloc(100, 7).toString("base64")],
  ])("a cipher_text that is %s is 400", async (name, bad) => {
    const reply = await call(project, "decrypt-data", { cipher_text: bad });
    // An empty cipher_text is a missing one.
    expectError(reply, 400, name === "an empty string" ? "KMS.0204" : "KMS.2201");
  });

  it("encryption_context mismatches are KMS.2201 with clear, different messages", async () => {
    const context = { tenant: "t1" };
    const withContext = await encrypt(kmsd, project, keyId, "bound", {
      encryption_context: context,
    });
    const withoutContext = await encrypt(kmsd, project, keyId, "unbound");

    const missing = expectError(
      await call(project, "decrypt-data", { cipher_text: withContext }),
      400,
      "KMS.2201",
    );
    const different = expectError(
      await call(project, "decrypt-data", {
        cipher_text: withContext,
        encryption_context: { tenant: "t2" },
      }),
      400,
      "KMS.2201",
    );
    const extra = expectError(
      await call(project, "decrypt-data", {
        cipher_text: withContext,
        encryption_context: { tenant: "t1", more: "x" },
      }),
      400,
      "KMS.2201",
    );
    const unexpected = expectError(
      await call(project, "decrypt-data", {
        cipher_text: withoutContext,
        encryption_context: context,
      }),
      400,
      "KMS.2201",
    );
    for (const message of [missing, different, extra, unexpected]) {
      expect(message).toContain("encryption_context");
      expect(message).not.toContain("t1");
    }
    expect(new Set([missing, different, unexpected]).size).toBe(3);
    expect(missing).toMatch(/with an encryption_context/);
    expect(unexpected).toMatch(/without an encryption_context/);
    // The right context still works.
    const ok = await call(project, "decrypt-data", {
      cipher_text: withContext,
      encryption_context: context,
    });
    expect(str(expectOk(ok), "plain_text")).toBe("bound");
  });
});

describe("request ids", () => {
  it("every response, success or error, carries a unique X-Request-Id", async () => {
    const keyId = await createKeyRest(kmsd, "pids", "ids");
    const replies: Reply[] = [
      await call("pids", "encrypt-data", { key_id: keyId, plain_text: "a" }),
      await call("pids", "encrypt-data", { key_id: keyId, plain_text: "a" }),
      await call("pids", "describe-key", { key_id: keyId }),
      await call("pids", "list-keys", {}),
      await call("pids", "no-such-operation", {}),
      await call("pids", "encrypt-data", undefined, "GET"),
      await call("pids", "encrypt-data", "{"),
      await call("pids", "encrypt-data", "[]"),
      await call("pids", "encrypt-data", "x".repeat(MAX_BODY + 1)),
      await call("pids", "describe-key", { key_id: randomUUID() }),
      await call("pids", "describe-key", {}),
    ];
    expect(replies.map((reply) => reply.status)).toEqual([
      200, 200, 200, 200, 404, 405, 400, 400, 400, 404, 400,
    ]);
    const ids = replies.map((reply) => reply.requestId);
    for (const id of ids) expect(id).toMatch(UUID);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("a client's own X-Request-Id does not replace the server's", async () => {
    const reply = await call("pids", "list-keys", {}, undefined);
    const mine = await kms(kmsd, "pids", "list-keys", {}, { headers: { "x-request-id": "mine" } });
    expect(mine.requestId).toMatch(UUID);
    expect(mine.requestId).not.toBe(reply.requestId);
  });
});

describe("HTTP/2 cleartext (prior knowledge)", () => {
  function h2Call(
    session: http2.ClientHttp2Session,
    path: string,
    body: unknown,
    token: string,
  ): Promise<{ status: number; headers: http2.IncomingHttpHeaders; json: unknown }> {
    return new Promise((resolve, reject) => {
      const stream = session.request({
        ":method": "POST",
        ":path": path,
        "content-type": "application/json",
        "x-auth-token": token,
      });
      let headers: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      stream.on("response", (received) => {
        headers = received;
      });
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("end", () => {
        try {
          resolve({
            status: Number(headers[":status"]),
            headers,
            json: JSON.parse(Buffer.concat(chunks).toString("utf8")),
          });
        } catch (error) {
          reject(error);
        }
      });
      stream.on("error", reject);
      stream.end(JSON.stringify(body));
    });
  }

  it("serves REST encrypt-data and decrypt-data over h2c", async () => {
    const keyId = await createKeyRest(kmsd, "ph2", "h2");
    const token = await tokenFor(kmsd, "ph2");
    const session = http2.connect(url);
    try {
      const encrypted = await h2Call(
        session,
        "/v1.0/ph2/kms/encrypt-data",
        {
          key_id: keyId,
          plain_text: "12345678",
        },
        token,
      );
      expect(encrypted.status).toBe(200);
      expect(encrypted.headers["content-type"]).toBe(JSON_CONTENT_TYPE);
      expect(encrypted.headers["x-request-id"]).toMatch(UUID);
      expect(encrypted.json).toEqual({ key_id: keyId, cipher_text: expect.any(String) });
      const decrypted = await h2Call(
        session,
        "/v1.0/ph2/kms/decrypt-data",
        {
          cipher_text: str(encrypted.json, "cipher_text"),
        },
        token,
      );
      expect(decrypted.status).toBe(200);
      expect(decrypted.json).toEqual({
        key_id: keyId,
        plain_text: "12345678",
        plain_text_base64: "MTIzNDU2Nzg=",
      });
      const missing = await h2Call(session, "/v1.0/ph2/kms/nothing-here", {}, token);
      expect(missing.status).toBe(404);
      expect(missing.json).toEqual({
        error_code: "APIGW.0101",
        error_msg: expect.any(String),
        request_id: missing.headers["x-request-id"],
      });
    } finally {
      session.close();
    }
  });
});
