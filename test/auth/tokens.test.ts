/**
 * Bearer tokens: X-Auth-Token on REST, x-auth-token or authorization:
 * Bearer on gRPC and Connect. Tokens are made by the CLI or the store API,
 * expire, and can be revoked while a server runs.
 */
import { fromJson, type JsonObject, toJson } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueToken } from "../../src/auth/issue-credentials.js";
import type { Role } from "../../src/keystore/access-types.js";
import { openSqliteStore } from "../../src/keystore/sqlite/sqlite-store.js";
import { createKey, type RunningKmsd, startKmsd } from "../support/kmsd.js";
import { sendRaw } from "../support/signing.js";
import {
  CONNECT_TRANSPORTS,
  cliJson,
  connectClient,
  connectFailureOf,
  expectFlat,
  expectNested,
  expectOk,
  expectRpcFailure,
  grpcFailure,
  grpcOk,
  type KmsClient,
  kmsMethod,
  type RpcFailure,
  SignedGrpc,
  waitUntil,
} from "./helpers.js";

let kmsd: RunningKmsd;
let grpcClient: SignedGrpc;
const closers: (() => void)[] = [];
let nextProject = 0;

beforeAll(async () => {
  kmsd = await startKmsd();
  grpcClient = new SignedGrpc(kmsd.port);
});

afterAll(async () => {
  grpcClient?.close();
  for (const close of closers) close();
  await kmsd?.stop();
});

const HOUR_MS = 3_600_000;

/** Issues a token through the store API; `ageMs` back-dates it (a 1 h token aged 2 h has expired). */
async function storeToken(projectId: string, role: Role = "admin", ageMs = 0) {
  const store = await openSqliteStore({ dataDir: kmsd.config.dataDir });
  try {
    return await issueToken(store, {
      projectId,
      role,
      ttlMs: HOUR_MS,
      description: "tokens test",
      now: Date.now() - ageMs,
    });
  } finally {
    await store.close();
  }
}

async function revoke(tokenId: string): Promise<void> {
  const store = await openSqliteStore({ dataDir: kmsd.config.dataDir });
  try {
    expect(await store.revokeToken(tokenId, Date.now())).toBe(true);
  } finally {
    await store.close();
  }
}

function rest(
  projectId: string,
  operation: string,
  body: unknown,
  headers: Record<string, string>,
) {
  return sendRaw(`${kmsd.url}/v1.0/${projectId}/kms/${operation}`, {
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

/** A project with a key, an admin token, a user token, and the tokens that must fail. */
async function tokenProject() {
  nextProject += 1;
  const projectId = `tokens-${nextProject}`;
  const keyId = await createKey(kmsd.config, projectId, `key-${nextProject}`);
  const admin = await storeToken(projectId);
  const user = await storeToken(projectId, "user");
  const expired = await storeToken(projectId, "admin", 2 * HOUR_MS);
  const revoked = await storeToken(projectId);
  await revoke(revoked.token_id);
  const other = await storeToken(`${projectId}-other`);
  return { projectId, keyId, admin, user, expired, revoked, other };
}

describe("X-Auth-Token on REST", () => {
  it("an admin token works; authorization: Bearer works too", async () => {
    const { projectId, keyId, admin } = await tokenProject();
    const encrypted = expectOk(
      await rest(
        projectId,
        "encrypt-data",
        { key_id: keyId, plain_text: "t" },
        {
          "x-auth-token": admin.token,
        },
      ),
    );
    const decrypted = expectOk(
      await rest(
        projectId,
        "decrypt-data",
        { cipher_text: encrypted.cipher_text },
        {
          authorization: `Bearer ${admin.token}`,
        },
      ),
    );
    expect(decrypted.plain_text).toBe("t");
  });

  it("no token, an unknown token: 401 APIGW.0301", async () => {
    const { projectId } = await tokenProject();
    expectFlat(await rest(projectId, "list-keys", {}, {}), 401, "APIGW.0301");
    expectFlat(
      await rest(projectId, "list-keys", {}, { "x-auth-token": "kmsd_not-a-token" }),
      401,
      "APIGW.0301",
    );
    expectFlat(
      await rest(projectId, "list-keys", {}, { authorization: "Bearer kmsd_not-a-token" }),
      401,
      "APIGW.0301",
    );
  });

  it("an expired token: 403 KMS.0303", async () => {
    const { projectId, expired } = await tokenProject();
    const reply = await rest(projectId, "list-keys", {}, { "x-auth-token": expired.token });
    expectNested(reply, 403, "KMS.0303");
  });

  it("a revoked token: 401 APIGW.0301", async () => {
    const { projectId, revoked } = await tokenProject();
    const reply = await rest(projectId, "list-keys", {}, { "x-auth-token": revoked.token });
    expectFlat(reply, 401, "APIGW.0301");
  });

  it("another project's token: 403 KMS.0321", async () => {
    const { projectId, other } = await tokenProject();
    const reply = await rest(projectId, "list-keys", {}, { "x-auth-token": other.token });
    expectNested(reply, 403, "KMS.0321");
  });

  it("a user token uses keys but may not create or disable them: 403 KMS.0307", async () => {
    const { projectId, keyId, user } = await tokenProject();
    const headers = { "x-auth-token": user.token };
    expectOk(await rest(projectId, "encrypt-data", { key_id: keyId, plain_text: "u" }, headers));
    expectOk(await rest(projectId, "describe-key", { key_id: keyId }, headers));
    expectNested(
      await rest(projectId, "create-key", { key_alias: "users-cannot" }, headers),
      403,
      "KMS.0307",
    );
    expectNested(await rest(projectId, "disable-key", { key_id: keyId }, headers), 403, "KMS.0307");
  });

  it("`kmsd tokens create` prints a working token; `tokens revoke` stops it within a second", async () => {
    nextProject += 1;
    const projectId = `tokens-cli-${nextProject}`;
    const created = (await cliJson(kmsd.config, [
      "tokens",
      "create",
      "--project",
      projectId,
      "--role",
      "user",
      "--ttl",
      "24h",
    ])) as Record<string, string>;
    expect(created).toEqual({
      token: expect.stringMatching(/^kmsd_[A-Za-z0-9_-]{43}$/),
      token_id: expect.any(String),
      project_id: projectId,
      role: "user",
      expires_at: expect.any(String),
    });
    const lifetime = Date.parse(created.expires_at ?? "") - Date.now();
    expect(lifetime).toBeGreaterThan(23 * HOUR_MS);
    expect(lifetime).toBeLessThanOrEqual(24 * HOUR_MS);
    const headers = { "x-auth-token": created.token ?? "" };
    expectOk(await rest(projectId, "list-keys", {}, headers));
    // The token is stored hashed: the list shows its id, never the token.
    const listed = await cliJson(kmsd.config, ["tokens", "list", "--project", projectId]);
    expect(JSON.stringify(listed)).not.toContain(created.token);
    expect(listed).toEqual([
      expect.objectContaining({ token_id: created.token_id, revoked_at: null }),
    ]);

    await cliJson(kmsd.config, ["tokens", "revoke", "--token-id", created.token_id ?? ""]);
    const took = await waitUntil("the revoked token is refused", async () => {
      const reply = await rest(projectId, "list-keys", {}, headers);
      if (reply.status === 200) return false;
      expectFlat(reply, 401, "APIGW.0301");
      return true;
    });
    expect(took).toBeLessThan(1500);
  });

  it("a token made with `--ttl 1s` expires: 403 KMS.0303", async () => {
    nextProject += 1;
    const projectId = `tokens-ttl-${nextProject}`;
    const created = (await cliJson(kmsd.config, [
      "tokens",
      "create",
      "--project",
      projectId,
      "--role",
      "admin",
      "--ttl",
      "1s",
    ])) as Record<string, string>;
    const expiresAt = Date.parse(created.expires_at ?? "");
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiresAt - Date.now() + 50)));
    const reply = await rest(projectId, "list-keys", {}, { "x-auth-token": created.token ?? "" });
    expectNested(reply, 403, "KMS.0303");
  });
});

/** A protocol that carries tokens in metadata / headers. */
interface RpcDriver {
  readonly name: string;
  call(
    method: string,
    request: JsonObject,
    headers: Record<string, string>,
  ): Promise<{ ok: true; response: JsonObject } | ({ ok: false } & RpcFailure)>;
}

const drivers: RpcDriver[] = [
  {
    name: "gRPC (@grpc/grpc-js)",
    async call(method, request, headers) {
      const outcome = await grpcClient.call(headers, method, request);
      return outcome.ok ? { ok: true, response: outcome.response as JsonObject } : outcome;
    },
  },
  ...CONNECT_TRANSPORTS.map((transport): RpcDriver => {
    let client: KmsClient | undefined;
    return {
      name: transport.name,
      async call(method, request, headers) {
        client ??= connectClient(transport, kmsd.url, [], (close) => closers.push(close));
        const desc = kmsMethod(method);
        const fn = Reflect.get(client, desc.localName) as (
          message: unknown,
          options: { headers: Record<string, string> },
        ) => Promise<unknown>;
        try {
          const response = await fn(fromJson(desc.input, request), { headers });
          const json = toJson(desc.output, response as never, { useProtoFieldName: true });
          return { ok: true, response: json as JsonObject };
        } catch (error) {
          return { ok: false, ...connectFailureOf(error) };
        }
      },
    };
  }),
];

describe.each(drivers)("tokens over $name", (driver) => {
  const asToken = (token: string) => ({ "x-auth-token": token });
  const asBearer = (token: string) => ({ authorization: `Bearer ${token}` });

  it.each([
    ["x-auth-token", asToken],
    ["authorization: Bearer", asBearer],
  ])("an admin token in %s works", async (_name, carry) => {
    const { projectId, keyId, admin } = await tokenProject();
    const encrypted = await driver.call(
      "EncryptData",
      { project_id: projectId, key_id: keyId, plain_text: "rpc" },
      carry(admin.token),
    );
    if (!encrypted.ok) throw new Error(`${encrypted.reason}: ${encrypted.message}`);
    const decrypted = await driver.call(
      "DecryptData",
      { project_id: projectId, cipher_text: encrypted.response.cipher_text as string },
      carry(admin.token),
    );
    expect(decrypted).toMatchObject({ ok: true, response: { plain_text: "rpc" } });
  });

  it.each([
    ["x-auth-token", asToken],
    ["authorization: Bearer", asBearer],
  ])(
    "failures with the token in %s map to gRPC codes with the Huawei code as ErrorInfo",
    async (_name, carry) => {
      const p = await tokenProject();
      const list = { project_id: p.projectId };
      const cases: [string, Promise<Awaited<ReturnType<RpcDriver["call"]>>>, Code, string][] = [
        ["no token", driver.call("ListKeys", list, {}), Code.Unauthenticated, "APIGW.0301"],
        [
          "unknown token",
          driver.call("ListKeys", list, carry("kmsd_unknown")),
          Code.Unauthenticated,
          "APIGW.0301",
        ],
        [
          "revoked token",
          driver.call("ListKeys", list, carry(p.revoked.token)),
          Code.Unauthenticated,
          "APIGW.0301",
        ],
        [
          "expired token",
          driver.call("ListKeys", list, carry(p.expired.token)),
          Code.Unauthenticated,
          "KMS.0303",
        ],
        [
          "another project's token",
          driver.call("ListKeys", list, carry(p.other.token)),
          Code.PermissionDenied,
          "KMS.0321",
        ],
        [
          "a user token on CreateKey",
          driver.call(
            "CreateKey",
            { project_id: p.projectId, key_alias: "users-cannot" },
            carry(p.user.token),
          ),
          Code.PermissionDenied,
          "KMS.0307",
        ],
      ];
      for (const [what, call, code, reason] of cases) {
        const outcome = await call;
        if (outcome.ok)
          throw new Error(`${what}: expected a failure, got ${JSON.stringify(outcome)}`);
        expectRpcFailure(outcome, code, reason);
      }
      // The user token itself works where users may go.
      const described = await driver.call(
        "DescribeKey",
        { project_id: p.projectId, key_id: p.keyId },
        carry(p.user.token),
      );
      expect(described).toMatchObject({ ok: true, response: { key_info: { key_id: p.keyId } } });
    },
  );
});

describe("revocation over gRPC", () => {
  it("a token revoked while in use stops working within a second", async () => {
    const { projectId, keyId, admin } = await tokenProject();
    const request = { project_id: projectId, key_id: keyId };
    grpcOk(await grpcClient.call({ "x-auth-token": admin.token }, "DescribeKey", request));
    await revoke(admin.token_id);
    const took = await waitUntil("the revoked token is refused", async () => {
      const outcome = await grpcClient.call(
        { "x-auth-token": admin.token },
        "DescribeKey",
        request,
      );
      if (outcome.ok) return false;
      expectRpcFailure(grpcFailure(outcome), Code.Unauthenticated, "APIGW.0301");
      return true;
    });
    expect(took).toBeLessThan(1500);
  });
});
