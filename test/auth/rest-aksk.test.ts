/**
 * Huawei AK/SK signing (SDK-HMAC-SHA256) on kmsd's REST paths, with Huawei's
 * own Node SDK as the client: its ClientBuilder/BasicCredentials client for
 * the calls that succeed, its AKSKSigner plus a plain HTTP request for the
 * failures (the SDK's error parser does not read Huawei's nested error body).
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openSqliteStore } from "../../src/keystore/sqlite/sqlite-store.js";
import { createKey, type RunningKmsd, startKmsd } from "../support/kmsd.js";
import {
  issueTestCredential,
  type RestSigning,
  sdkClient,
  sdkDate,
  sdkPost,
  sendRaw,
  sendSignedRest,
  sha256Hex,
  signRest,
  type TestCredential,
} from "../support/signing.js";
import {
  cliJson,
  expectFlat,
  expectNested,
  expectOk,
  MINUTE_MS,
  UNKNOWN_KEY_ID,
  UUID,
  waitUntil,
} from "./helpers.js";

let kmsd: RunningKmsd;
let nextProject = 0;

beforeAll(async () => {
  kmsd = await startKmsd();
});

afterAll(async () => {
  await kmsd?.stop();
});

/** A project of its own, with an admin credential and an enabled key. */
async function project(role: "admin" | "user" = "admin") {
  nextProject += 1;
  const projectId = `rest-aksk-${nextProject}`;
  const credential = await issueTestCredential(kmsd.config, projectId, role);
  const keyId = await createKey(kmsd.config, projectId, `key-${nextProject}`);
  return { projectId, credential, keyId };
}

/** A signed list-keys request of the credential's own project. */
function listKeys(credential: TestCredential, extra: Partial<RestSigning> = {}): RestSigning {
  return {
    baseUrl: kmsd.url,
    path: `/v1.0/${credential.project_id}/kms/list-keys`,
    data: {},
    ...extra,
  };
}

describe("Huawei's SDK client (ClientBuilder + BasicCredentials)", () => {
  it("round-trips encrypt-data and decrypt-data", async () => {
    const { credential, keyId } = await project();
    const client = sdkClient(kmsd.url, credential);
    const encrypted = await sdkPost(client, "encrypt-data", {
      key_id: keyId,
      plain_text: "signed by Huawei's SDK",
      encryption_context: { purpose: "aksk" },
    });
    expect(encrypted.httpStatusCode).toBe(200);
    expect(encrypted.key_id).toBe(keyId);
    const decrypted = await sdkPost(client, "decrypt-data", {
      cipher_text: encrypted.cipher_text,
      encryption_context: { purpose: "aksk" },
    });
    expect(decrypted.plain_text).toBe("signed by Huawei's SDK");
  });

  it("manages keys: create-key, describe-key, disable-key, list-keys", async () => {
    const { projectId, credential, keyId: firstKey } = await project();
    const client = sdkClient(kmsd.url, credential);
    const created = await sdkPost(client, "create-key", { key_alias: "made-by-sdk" });
    const keyInfo = created.key_info as { key_id: string; domain_id: string };
    expect(keyInfo.key_id).toMatch(UUID);
    expect(keyInfo.domain_id).toBe(projectId);
    const described = await sdkPost(client, "describe-key", { key_id: keyInfo.key_id });
    expect(described.key_info).toMatchObject({ key_alias: "made-by-sdk", key_state: "2" });
    const disabled = await sdkPost(client, "disable-key", { key_id: keyInfo.key_id });
    expect(disabled.key_info).toEqual({ key_id: keyInfo.key_id, key_state: "3" });
    const listed = await sdkPost(client, "list-keys", {});
    expect((listed.keys as string[]).sort()).toEqual([firstKey, keyInfo.key_id].sort());
  });

  it("what the SDK sends is what kmsd verifies: X-Sdk-Date, host and X-Project-Id signed", () => {
    const credential: TestCredential = {
      access_key: "KMSDEXAMPLEEXAMPLE00",
      secret_key: "x".repeat(40),
      project_id: "p1",
      role: "admin",
    };
    const headers = signRest(credential, listKeys(credential));
    expect(headers.Authorization).toMatch(
      /^SDK-HMAC-SHA256 Access=KMSDEXAMPLEEXAMPLE00, SignedHeaders=content-type;host;x-project-id;x-sdk-date, Signature=[0-9a-f]{64}$/,
    );
    expect(headers["X-Sdk-Date"]).toMatch(/^\d{8}T\d{6}Z$/);
  });
});

describe("AK/SK failures", () => {
  it("no credential at all: 401 APIGW.0301, flat gateway body", async () => {
    const { projectId } = await project();
    const reply = await sendRaw(`${kmsd.url}/v1.0/${projectId}/kms/list-keys`, {
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expectFlat(reply, 401, "APIGW.0301");
  });

  it("a signature that is not the request's: 401 APIGW.0301", async () => {
    const { credential } = await project();
    const request = listKeys(credential);
    expectOk(await sendSignedRest(credential, request));
    const headers = signRest(credential, request);
    const forged = (headers.Authorization ?? "").replace(
      /Signature=[0-9a-f]{64}/,
      `Signature=${randomBytes(32).toString("hex")}`,
    );
    const reply = await sendSignedRest(credential, request, {
      headers: { ...headers, Authorization: forged },
    });
    expectFlat(reply, 401, "APIGW.0301");
  });

  it("a malformed Authorization header: 401 APIGW.0301", async () => {
    const { credential } = await project();
    const reply = await sendSignedRest(credential, listKeys(credential), {
      headers: { Authorization: `SDK-HMAC-SHA256 Access=${credential.access_key}` },
    });
    expectFlat(reply, 401, "APIGW.0301");
  });

  it("a tampered body: 401 APIGW.0301", async () => {
    const { credential, keyId } = await project();
    const request: RestSigning = {
      baseUrl: kmsd.url,
      path: `/v1.0/${credential.project_id}/kms/encrypt-data`,
      data: { key_id: keyId, plain_text: "pay 10" },
    };
    expectOk(await sendSignedRest(credential, request));
    const reply = await sendSignedRest(credential, request, {
      body: JSON.stringify({ key_id: keyId, plain_text: "pay 99" }),
    });
    expectFlat(reply, 401, "APIGW.0301");
  });

  it("a body with the same JSON meaning but other bytes: 401 APIGW.0301 (the bytes are signed)", async () => {
    const { credential, keyId } = await project();
    const data = { key_id: keyId, plain_text: "bytes" };
    const request: RestSigning = {
      baseUrl: kmsd.url,
      path: `/v1.0/${credential.project_id}/kms/encrypt-data`,
      data,
    };
    const reply = await sendSignedRest(credential, request, {
      body: JSON.stringify(data, null, 1),
    });
    expectFlat(reply, 401, "APIGW.0301");
  });

  it("a tampered path: 401 APIGW.0301", async () => {
    const { credential, keyId } = await project();
    const request: RestSigning = {
      baseUrl: kmsd.url,
      path: `/v1.0/${credential.project_id}/kms/describe-key`,
      data: { key_id: keyId },
    };
    expectOk(await sendSignedRest(credential, request));
    const reply = await sendSignedRest(credential, request, {
      target: `/v1.0/${credential.project_id}/kms/disable-key`,
    });
    expectFlat(reply, 401, "APIGW.0301");
    const described = expectOk(await sendSignedRest(credential, request));
    expect(described.key_info).toMatchObject({ key_state: "2" });
  });

  it("a tampered query: 401 APIGW.0301", async () => {
    const { credential } = await project();
    const request = listKeys(credential, { queryParams: { marker: "a b", limit: ["2", "1"] } });
    // The signed query, sent as signed (in another order), is accepted.
    expectOk(
      await sendSignedRest(credential, request, {
        target: `${request.path}?limit=2&marker=a%20b&limit=1`,
      }),
    );
    for (const query of ["?marker=a%20c&limit=1&limit=2", "?marker=a%20b&limit=1", ""]) {
      const reply = await sendSignedRest(credential, request, {
        target: `${request.path}${query}`,
      });
      expectFlat(reply, 401, "APIGW.0301");
    }
  });

  it("a tampered signed header: 401 APIGW.0301", async () => {
    const { credential } = await project();
    const request = listKeys(credential, { headers: { "X-Client-Tag": "batch-7" } });
    const signed = signRest(credential, request);
    expect(signed.Authorization).toContain("x-client-tag");
    expectOk(await sendSignedRest(credential, request));
    const reply = await sendSignedRest(credential, request, {
      headers: { ...signed, "X-Client-Tag": "batch-8" },
    });
    expectFlat(reply, 401, "APIGW.0301");
  });

  it("a tampered host (signed by the SDK): 401 APIGW.0301", async () => {
    const { credential } = await project();
    const request = listKeys(credential);
    const signed = signRest(credential, request);
    expect(signed.host).toBe(`127.0.0.1:${kmsd.port}`);
    const reply = await sendSignedRest(credential, request, {
      headers: { ...signed, host: `localhost:${kmsd.port}` },
    });
    expectFlat(reply, 401, "APIGW.0301");
  });

  it("a header listed as signed but not sent: 401 APIGW.0301", async () => {
    const { credential } = await project();
    // Signed with an empty value: the canonical form cannot tell it from absent.
    const request = listKeys(credential, { headers: { "X-Client-Tag": "" } });
    const signed = signRest(credential, request);
    expect(signed.Authorization).toContain("x-client-tag");
    expectOk(await sendRaw(`${kmsd.url}${request.path}`, { headers: signed, body: "{}" }));
    const { "X-Client-Tag": _dropped, ...headers } = signed;
    expectFlat(
      await sendRaw(`${kmsd.url}${request.path}`, { headers, body: "{}" }),
      401,
      "APIGW.0301",
    );
  });

  it("X-Sdk-Date missing or not signed: 401 APIGW.0301", async () => {
    const { credential } = await project();
    const request = listKeys(credential, { date: sdkDate() });
    const signed = signRest(credential, request);
    expectOk(await sendRaw(`${kmsd.url}${request.path}`, { headers: signed, body: "{}" }));
    const { "X-Sdk-Date": _date, ...withoutDate } = signed;
    expectFlat(
      await sendRaw(`${kmsd.url}${request.path}`, { headers: withoutDate, body: "{}" }),
      401,
      "APIGW.0301",
    );
    const unsigned = (signed.Authorization ?? "").replace(";x-sdk-date", "");
    expect(unsigned).not.toBe(signed.Authorization);
    expectFlat(
      await sendRaw(`${kmsd.url}${request.path}`, {
        headers: { ...signed, Authorization: unsigned },
        body: "{}",
      }),
      401,
      "APIGW.0301",
    );
  });

  it.each([
    ["16 minutes behind", -16],
    ["16 minutes ahead", 16],
  ])("X-Sdk-Date %s the server's clock: 401 APIGW.0303", async (_name, minutes) => {
    const { credential } = await project();
    const reply = await sendSignedRest(
      credential,
      listKeys(credential, { date: sdkDate(Date.now() + minutes * MINUTE_MS) }),
    );
    expectFlat(reply, 401, "APIGW.0303");
  });

  it.each([
    ["14 minutes behind", -14],
    ["14 minutes ahead", 14],
  ])("X-Sdk-Date %s the server's clock is accepted", async (_name, minutes) => {
    const { credential } = await project();
    const request = listKeys(credential, { date: sdkDate(Date.now() + minutes * MINUTE_MS) });
    expect(signRest(credential, request)["X-Sdk-Date"]).toBe(request.date);
    expectOk(await sendSignedRest(credential, request));
  });

  it("X-Sdk-Content-Sha256: the body's hash, signed, is accepted; UNSIGNED-PAYLOAD and other hashes are not", async () => {
    const { credential } = await project();
    const body = "{}";
    const declared = (value: string) =>
      listKeys(credential, { headers: { "X-Sdk-Content-Sha256": value } });
    expectOk(await sendSignedRest(credential, declared(sha256Hex(body)), { body }));
    for (const value of ["UNSIGNED-PAYLOAD", sha256Hex("{ }")]) {
      expectFlat(await sendSignedRest(credential, declared(value), { body }), 401, "APIGW.0301");
    }
  });

  it("unknown, disabled and wrongly signed access keys get byte-identical answers but for the request id", async () => {
    const { credential: disabled } = await project();
    const { credential: wrongSecret } = await project();
    expectOk(await sendSignedRest(disabled, listKeys(disabled)));
    await cliJson(kmsd.config, ["credentials", "disable", "--access-key", disabled.access_key]);
    await waitUntil("the disabled credential is refused", async () => {
      return (await sendSignedRest(disabled, listKeys(disabled))).status === 401;
    });
    const unknown: TestCredential = {
      ...wrongSecret,
      access_key: `KMSD${randomBytes(8).toString("hex").toUpperCase().slice(0, 16)}`,
    };
    const forged: TestCredential = { ...wrongSecret, secret_key: "y".repeat(40) };
    const date = sdkDate();
    const replies = await Promise.all(
      [unknown, disabled, forged].map((credential) =>
        sendSignedRest(credential, {
          baseUrl: kmsd.url,
          path: `/v1.0/${wrongSecret.project_id}/kms/list-keys`,
          data: {},
          date,
          projectHeader: wrongSecret.project_id,
        }),
      ),
    );
    const shapes = replies.map((reply) => {
      expectFlat(reply, 401, "APIGW.0301");
      const { date: _date, "x-request-id": _id, ...headers } = reply.headers;
      return {
        status: reply.status,
        headers,
        body: reply.text.replace(reply.requestId ?? "-", "<request id>"),
      };
    });
    expect(shapes[1]).toEqual(shapes[0]);
    expect(shapes[2]).toEqual(shapes[0]);
    expect(new Set(replies.map((reply) => reply.requestId)).size).toBe(3);
  });

  it("a credential of project A on project B's path: 403 KMS.0321", async () => {
    const a = await project();
    const b = await project();
    // As the SDK would send it: X-Project-Id is A's (the credential's), the path B's.
    const reply = await sendSignedRest(a.credential, {
      baseUrl: kmsd.url,
      path: `/v1.0/${b.projectId}/kms/describe-key`,
      data: { key_id: b.keyId },
    });
    expectNested(reply, 403, "KMS.0321");
    // X-Project-Id naming project B does not help.
    const claimed = await sendSignedRest(a.credential, {
      baseUrl: kmsd.url,
      path: `/v1.0/${b.projectId}/kms/describe-key`,
      data: { key_id: b.keyId },
      projectHeader: b.projectId,
    });
    expectNested(claimed, 403, "KMS.0321");
    // Nor does leaving it out.
    const bare = await sendSignedRest(a.credential, {
      baseUrl: kmsd.url,
      path: `/v1.0/${b.projectId}/kms/encrypt-data`,
      data: { key_id: b.keyId, plain_text: "x" },
      projectHeader: null,
    });
    expectNested(bare, 403, "KMS.0321");
  });

  it("a user credential may use, describe and list keys, but not create-key or disable-key (403 KMS.0307)", async () => {
    const { projectId, keyId } = await project();
    const user = await issueTestCredential(kmsd.config, projectId, "user");
    const client = sdkClient(kmsd.url, user);
    const encrypted = await sdkPost(client, "encrypt-data", { key_id: keyId, plain_text: "u" });
    const decrypted = await sdkPost(client, "decrypt-data", { cipher_text: encrypted.cipher_text });
    expect(decrypted.plain_text).toBe("u");
    expect(await sdkPost(client, "describe-key", { key_id: keyId })).toMatchObject({
      key_info: { key_id: keyId },
    });
    expect(await sdkPost(client, "list-keys", {})).toMatchObject({ keys: [keyId] });
    for (const [operation, data] of [
      ["create-key", { key_alias: "not-for-users" }],
      ["disable-key", { key_id: keyId }],
    ] as const) {
      const reply = await sendSignedRest(user, {
        baseUrl: kmsd.url,
        path: `/v1.0/${projectId}/kms/${operation}`,
        data,
      });
      expectNested(reply, 403, "KMS.0307");
    }
    const described = await sdkPost(client, "describe-key", { key_id: keyId });
    expect(described.key_info).toMatchObject({ key_state: "2" });
  });

  it("a deleted credential: 401 APIGW.0301", async () => {
    const { credential } = await project();
    expectOk(await sendSignedRest(credential, listKeys(credential)));
    const store = await openSqliteStore({ dataDir: kmsd.config.dataDir });
    try {
      expect(await store.deleteCredential(credential.access_key)).toBe(true);
    } finally {
      await store.close();
    }
    await waitUntil("the deleted credential is refused", async () => {
      const reply = await sendSignedRest(credential, listKeys(credential));
      if (reply.status === 200) return false;
      expectFlat(reply, 401, "APIGW.0301");
      return true;
    });
  });

  it("a key of the credential's own project that does not exist is 404 KMS.0207, not an auth error", async () => {
    const { credential } = await project();
    const reply = await sendSignedRest(credential, {
      baseUrl: kmsd.url,
      path: `/v1.0/${credential.project_id}/kms/describe-key`,
      data: { key_id: UNKNOWN_KEY_ID },
    });
    expectNested(reply, 404, "KMS.0207");
  });
});
