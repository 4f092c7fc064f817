import { createHash } from "node:crypto";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KmsService } from "../../gen/kms/v1/kms_pb.js";
import { issueCredential } from "../../src/auth/issue-credentials.js";
import { sign } from "../../src/auth/sdk-hmac-sha256.js";
import { rootKeyId, unwrapKeyMaterial } from "../../src/crypto/key-wrap.js";
import { openSqliteStore } from "../../src/keystore/sqlite/sqlite-store.js";
import { createLogger } from "../../src/observability/logger.js";
import { createKmsGrpcClient, grpc, isGrpcCallError } from "../support/grpc-client.js";
import {
  createKey,
  type RunningKmsd,
  startKmsd,
  TEST_ROOT_KEY,
  testToken,
} from "../support/kmsd.js";

const PROJECT = "plogs";

/** A pino destination that keeps every line. */
function captureLines(): { lines: string[]; destination: { write(line: string): void } } {
  const lines: string[] = [];
  return { lines, destination: { write: (line: string) => void lines.push(line) } };
}

function sdkDate(now = new Date()): string {
  return now
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}/, "");
}

/** Headers of a REST request signed the way Huawei's SDKs sign it. */
function signedHeaders(
  url: URL,
  body: string,
  accessKey: string,
  secretKey: string,
): Record<string, string> {
  const date = sdkDate();
  const signed: Record<string, string> = {
    "content-type": "application/json",
    host: url.host,
    "x-sdk-date": date,
  };
  const names = Object.keys(signed);
  const signature = sign(secretKey, date, {
    method: "POST",
    rawPath: url.pathname,
    rawQuery: "",
    header: (name) => signed[name],
    signedHeaders: names,
    payloadHash: createHash("sha256").update(body).digest("hex"),
  });
  // fetch sends Host itself.
  return {
    "content-type": "application/json",
    "x-sdk-date": date,
    authorization: `SDK-HMAC-SHA256 Access=${accessKey}, SignedHeaders=${names.join(";")}, Signature=${signature}`,
  };
}

describe("logs hold no secrets", () => {
  const capture = captureLines();
  let kmsd: RunningKmsd;
  let keyId: string;
  let token: string;
  let accessKey: string;
  let secretKey: string;
  let keyMaterial: Buffer;
  /** Every answer kmsd gave to a failed request: bodies, gRPC messages and details. */
  const errorAnswers: string[] = [];
  /** Everything kmsd must never write down. */
  const secrets: string[] = [];
  const ciphertexts: string[] = [];
  const requestIds: string[] = [];
  let metricsText = "";

  const plaintexts = {
    rest: "canary-plaintext-rest-8c1f0e",
    aksk: "canary-plaintext-aksk-41d9b7",
    grpc: "canary-plaintext-grpc-e5a203",
    connect: "canary-plaintext-connect-9b7c64",
  };
  const contextValue = "canary-context-value-5d21aa";
  const badToken = "kmsd_canaryBadToken0000000000000000000000000000";
  const wrongSecretKey = "canary-wrong-secret-key-0e9f11";

  beforeAll(async () => {
    kmsd = await startKmsd(
      { logLevel: "debug" },
      { logger: createLogger("debug", capture.destination) },
    );
    keyId = await createKey(kmsd.config, PROJECT, "logs");
    token = await testToken(kmsd.config, PROJECT);
    const rootBytes = Buffer.from(TEST_ROOT_KEY, "base64");
    const store = await openSqliteStore({ dataDir: kmsd.config.dataDir });
    try {
      const credential = await issueCredential(
        store,
        { bytes: rootBytes, id: rootKeyId(rootBytes) },
        { projectId: PROJECT, role: "admin", now: Date.now() },
      );
      accessKey = credential.access_key;
      secretKey = credential.secret_key;
      const version = await store.getKeyVersion(keyId, 1);
      if (version === undefined) throw new Error("no key version 1");
      keyMaterial = unwrapKeyMaterial(rootBytes, { keyId, version: 1 }, version.wrappedMaterial);
    } finally {
      await store.close();
    }
    secrets.push(
      ...Object.values(plaintexts),
      ...Object.values(plaintexts).map((text) => Buffer.from(text).toString("base64")),
      contextValue,
      token,
      badToken,
      secretKey,
      wrongSecretKey,
      TEST_ROOT_KEY,
      rootBytes.toString("hex"),
      keyMaterial.toString("hex"),
      keyMaterial.toString("base64"),
    );

    const base = `${kmsd.url}/v1.0/${PROJECT}/kms`;
    const rest = async (path: string, body: string, headers: Record<string, string>) => {
      const response = await fetch(`${base}/${path}`, { method: "POST", headers, body });
      const text = await response.text();
      const id = response.headers.get("x-request-id");
      if (id !== null) requestIds.push(id);
      if (response.status !== 200) errorAnswers.push(text);
      return { status: response.status, text };
    };
    const withToken = (value: string) => ({
      "content-type": "application/json",
      "x-auth-token": value,
    });
    const context = { purpose: contextValue };

    // REST with a token: encrypt, decrypt, decrypt with the wrong context.
    const encrypted = await rest(
      "encrypt-data",
      JSON.stringify({ key_id: keyId, plain_text: plaintexts.rest, encryption_context: context }),
      withToken(token),
    );
    expect(encrypted.status).toBe(200);
    const cipherText = (JSON.parse(encrypted.text) as { cipher_text: string }).cipher_text;
    ciphertexts.push(cipherText);
    expect(
      (
        await rest(
          "decrypt-data",
          JSON.stringify({ cipher_text: cipherText, encryption_context: context }),
          withToken(token),
        )
      ).status,
    ).toBe(200);
    expect(
      (
        await rest(
          "decrypt-data",
          JSON.stringify({
            cipher_text: cipherText,
            encryption_context: { purpose: `${contextValue}-x` },
          }),
          withToken(token),
        )
      ).status,
    ).toBe(400);

    // REST signed with AK/SK, then with the wrong secret key.
    const akskBody = JSON.stringify({ key_id: keyId, plain_text: plaintexts.aksk });
    const url = new URL(`${base}/encrypt-data`);
    const signed = await rest(
      "encrypt-data",
      akskBody,
      signedHeaders(url, akskBody, accessKey, secretKey),
    );
    expect(signed.status).toBe(200);
    ciphertexts.push((JSON.parse(signed.text) as { cipher_text: string }).cipher_text);
    expect(
      (
        await rest(
          "encrypt-data",
          akskBody,
          signedHeaders(url, akskBody, accessKey, wrongSecretKey),
        )
      ).status,
    ).toBe(401);

    // Refusals: a bad token, a plaintext too long, a plaintext of the wrong JSON type,
    // a body that is not JSON, an unknown path with the plaintext in its query.
    expect((await rest("encrypt-data", akskBody, withToken(badToken))).status).toBe(401);
    expect(
      (
        await rest(
          "encrypt-data",
          JSON.stringify({ key_id: keyId, plain_text: plaintexts.rest.repeat(200) }),
          withToken(token),
        )
      ).status,
    ).toBe(400);
    expect(
      (
        await rest(
          "encrypt-data",
          JSON.stringify({ key_id: keyId, plain_text: { nested: plaintexts.rest } }),
          withToken(token),
        )
      ).status,
    ).toBe(400);
    expect(
      (await rest("encrypt-data", `{"plain_text": "${plaintexts.rest}"`, withToken(token))).status,
    ).toBe(400);
    const unknown = await fetch(`${base}/no-such-api?plain_text=${plaintexts.rest}`, {
      method: "POST",
      headers: withToken(token),
    });
    expect(unknown.status).toBe(404);
    errorAnswers.push(await unknown.text());

    // gRPC: encrypt and decrypt with the token, then a bad token.
    const grpcClient = createKmsGrpcClient(kmsd.port);
    try {
      const metadata = new grpc.Metadata();
      metadata.set("x-auth-token", token);
      const reply = await grpcClient.callWithMetadata(
        "EncryptData",
        {
          project_id: PROJECT,
          key_id: keyId,
          plain_text: plaintexts.grpc,
          encryption_context: context,
        },
        metadata,
      );
      const grpcCipher = String(reply.response.cipher_text);
      ciphertexts.push(grpcCipher);
      requestIds.push(String(reply.headers.get("x-request-id")[0]));
      await grpcClient.call(
        "DecryptData",
        { project_id: PROJECT, cipher_text: grpcCipher, encryption_context: context },
        metadata,
      );
      const bad = new grpc.Metadata();
      bad.set("x-auth-token", badToken);
      const failure = await grpcClient
        .call(
          "EncryptData",
          { project_id: PROJECT, key_id: keyId, plain_text: plaintexts.grpc },
          bad,
        )
        .catch((error: unknown) => error);
      expect(isGrpcCallError(failure)).toBe(true);
      if (isGrpcCallError(failure)) {
        errorAnswers.push(failure.details, JSON.stringify(failure.metadata.toJSON()));
      }
    } finally {
      grpcClient.close();
    }

    // Connect: encrypt and decrypt, then a ciphertext that is not one.
    const connect = createClient(
      KmsService,
      createConnectTransport({
        baseUrl: kmsd.url,
        httpVersion: "1.1",
        interceptors: [
          (next) => async (request) => {
            request.header.set("x-auth-token", token);
            return next(request);
          },
        ],
      }),
    );
    const connectEncrypted = await connect.encryptData({
      projectId: PROJECT,
      keyId,
      plainText: plaintexts.connect,
    });
    ciphertexts.push(connectEncrypted.cipherText);
    await connect.decryptData({ projectId: PROJECT, cipherText: connectEncrypted.cipherText });
    const corrupted = `${connectEncrypted.cipherText.slice(0, -8)}AAAAAAA=`;
    const failure = await connect
      .decryptData({ projectId: PROJECT, cipherText: corrupted })
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ConnectError);
    errorAnswers.push(
      (failure as ConnectError).rawMessage,
      JSON.stringify((failure as ConnectError).details),
    );

    metricsText = await (await fetch(`${kmsd.url}/metrics`)).text();
  });
  afterAll(() => kmsd.stop());

  it("the secrets used are in none of the log lines, /metrics or the error answers", () => {
    expect(capture.lines.length).toBeGreaterThan(10);
    expect(errorAnswers.length).toBeGreaterThanOrEqual(9);
    const corpora = {
      logs: capture.lines.join(""),
      metrics: metricsText,
      errors: errorAnswers.join("\n"),
    };
    for (const [where, text] of Object.entries(corpora)) {
      for (const secret of [...secrets, ...ciphertexts]) {
        expect(text.includes(secret), `${where} contains ${secret.slice(0, 12)}…`).toBe(false);
      }
    }
  });

  it("writes one access line per request: request id, method, protocol, code, latency, project", () => {
    const access = capture.lines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter(
        (line) =>
          line.msg === "request" || line.msg === "request failed" || line.msg === "request refused",
      );
    for (const id of requestIds) {
      const lines = access.filter((line) => line.requestId === id);
      expect(lines, id).toHaveLength(1);
    }
    const kinds = new Set(access.map((line) => `${line.protocol} ${line.code}`));
    for (const kind of [
      "rest OK",
      "rest APIGW.0301",
      "rest KMS.2101",
      "rest APIGW.0101",
      "grpc OK",
      "connect OK",
    ]) {
      expect(kinds, kind).toContain(kind);
    }
    for (const line of access) {
      expect(Object.keys(line).sort()).toEqual([
        "code",
        "latencyUs",
        "level",
        "method",
        "msg",
        "projectId",
        "protocol",
        "requestId",
        "service",
        "time",
      ]);
      expect(line.latencyUs).toBeTypeOf("number");
      expect(line.level).toBe(line.code === "OK" ? "debug" : "info");
    }
    const encryptOk = access.find((line) => line.protocol === "rest" && line.code === "OK");
    expect(encryptOk).toMatchObject({
      method: "kms.v1.KmsService/EncryptData",
      projectId: PROJECT,
    });
  });
});

describe("at the default level (info)", () => {
  it("logs failed requests but not successful ones", async () => {
    const capture = captureLines();
    const kmsd = await startKmsd({}, { logger: createLogger("info", capture.destination) });
    try {
      const keyId = await createKey(kmsd.config, PROJECT, "info");
      const token = await testToken(kmsd.config, PROJECT);
      const post = (headers: Record<string, string>) =>
        fetch(`${kmsd.url}/v1.0/${PROJECT}/kms/encrypt-data`, {
          method: "POST",
          headers: { "content-type": "application/json", ...headers },
          body: JSON.stringify({ key_id: keyId, plain_text: "x" }),
        });
      const ok = await post({ "x-auth-token": token });
      const refused = await post({});
      expect([ok.status, refused.status]).toEqual([200, 401]);
      const byId = (id: string | null) =>
        capture.lines.filter((line) => id !== null && line.includes(id));
      expect(byId(ok.headers.get("x-request-id"))).toEqual([]);
      const [failed] = byId(refused.headers.get("x-request-id"));
      expect(JSON.parse(failed ?? "{}")).toMatchObject({
        level: "info",
        msg: "request failed",
        code: "APIGW.0301",
        protocol: "rest",
      });
    } finally {
      await kmsd.stop();
    }
  });
});
