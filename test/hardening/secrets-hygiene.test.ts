import { createHash, randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KmsService } from "../../gen/kms/v1/kms_pb.js";
import { rootKeyId, unwrapKeyMaterial } from "../../src/crypto/key-wrap.js";
import { openSqliteStore } from "../../src/keystore/sqlite/sqlite-store.js";
import { runCli } from "../audit/cli-helpers.js";
import { SignedGrpc, signingInterceptor } from "../auth/helpers.js";
import {
  createKmsGrpcClient,
  type GrpcMessage,
  isGrpcCallError,
  type KmsGrpcClient,
  type KmsMethod,
} from "../support/grpc-client.js";
import { removeDir, TEST_ROOT_KEY, tempDataDir } from "../support/kmsd.js";
import { type ReadyServer, spawnReadyServer } from "../support/serve-process.js";
import { sendRaw, signRest, type TestCredential } from "../support/signing.js";
import { findSecrets, type Secret, secretForms } from "./secret-search.js";

/**
 * Secrets hygiene: a real `kmsd serve` at --log-level debug, all of its
 * output captured, runs a representative workload over REST (AK/SK signed
 * with Huawei's SDK signer, and tokens), gRPC and Connect: credentials and
 * tokens created with the CLI, keys, encryption with distinctive plaintexts
 * and contexts, data keys, random bytes, batches, re-encryption, and
 * refusals (bad signatures, wrong tokens, bad ciphertexts, invalid input
 * carrying secret-looking values). Then the server's output, the CLI's
 * diagnostics, the audit trail (`kmsd audit export`), /metrics and every
 * error answer are searched for every plaintext, data key, random value,
 * secret key, token, key material and the root key: zero hits.
 */
const P = "psecrets";
/** A distinctive value: searchable, and never produced by chance. */
const canary = (what: string) => `canary-${what}-${randomBytes(8).toString("hex")}`;

const secrets: Secret[] = [];
const keep = (name: string, value: string | Uint8Array) => {
  secrets.push({ name, value });
  return value;
};
/**
 * Secret-looking values sent in identifier fields (key_id, sequence): the
 * audit trail records those fields as the caller sent them, by design
 * (docs/audit.md: forensics of what was probed), so they are searched for
 * everywhere but there, and must be found there.
 */
const identifiers: Secret[] = [];
const keepIdentifier = (name: string, value: string) => {
  identifiers.push({ name, value });
  return value;
};
/** Every answer to a failed request: bodies, headers, gRPC messages and details. */
const errorAnswers: string[] = [];
/** What must contain a secret: the search's positive controls. */
const mustShow: { where: string; text: string; secret: string }[] = [];
const cliDiagnostics: string[] = [];

let dataDir: string;
let server: ReadyServer;
let adminToken: string;
let credential: TestCredential;
let auditText = "";
let metricsText = "";
let serverOutput = "";

async function cli(args: readonly string[]): Promise<Record<string, unknown>> {
  const result = await runCli(args, dataDir);
  cliDiagnostics.push(result.stderr);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

interface RestReply {
  readonly status: number;
  readonly json: Record<string, unknown>;
}

/** A REST call; a failure's whole answer (status line, headers, body) is kept for the search. */
async function rest(
  action: string,
  body: unknown,
  auth: { token: string } | { credential: TestCredential },
): Promise<RestReply> {
  const pathName = `/v1.0/${P}/kms/${action}`;
  const text = typeof body === "string" ? body : JSON.stringify(body);
  const headers =
    "token" in auth
      ? { "content-type": "application/json", "x-auth-token": auth.token }
      : signRest(auth.credential, {
          baseUrl: server.url,
          path: pathName,
          data: typeof body === "string" ? undefined : body,
        });
  const reply = await sendRaw(`${server.url}${pathName}`, { headers, body: text });
  if (reply.status !== 200) errorAnswers.push(JSON.stringify(reply.headers), reply.text);
  return { status: reply.status, json: (reply.json ?? {}) as Record<string, unknown> };
}

/** The data key's hex form Huawei's encrypt-datakey takes: hex(key) + hex(SHA-256(key)). */
function withDigest(dataKey: Buffer): string {
  return dataKey.toString("hex") + createHash("sha256").update(dataKey).digest("hex");
}

function grpcFailureText(error: unknown): string {
  expect(isGrpcCallError(error)).toBe(true);
  if (!isGrpcCallError(error)) return "";
  return `${error.code} ${error.details} ${JSON.stringify(error.metadata.toJSON())}`;
}

/** The failure of a Connect call that must fail, as text. */
async function connectFailure(call: Promise<unknown>): Promise<string> {
  const error = await call.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(ConnectError);
  const failure = error as ConnectError;
  const metadata: string[] = [];
  failure.metadata.forEach((value, name) => {
    metadata.push(`${name}: ${value}`);
  });
  return `${Code[failure.code]} ${failure.rawMessage} ${JSON.stringify(failure.details)} ${metadata.join("\n")}`;
}

beforeAll(async () => {
  dataDir = await tempDataDir();
  server = await spawnReadyServer(dataDir, ["--log-level", "debug"]);
  keep("root key", TEST_ROOT_KEY);
  keep("root key bytes", Buffer.from(TEST_ROOT_KEY, "base64"));
  // The bootstrap credential kmsd made itself on the new data directory.
  const bootstrap = JSON.parse(
    await readFile(path.join(dataDir, "bootstrap-credentials.json"), "utf8"),
  ) as Record<string, string>;
  for (const field of ["token", "secret_key"]) keep(`bootstrap ${field}`, bootstrap[field] ?? "");

  // Credentials and tokens, made with the CLI while the server runs.
  const made = await cli(["credentials", "create", "--project", P, "--role", "admin"]);
  credential = made as unknown as TestCredential;
  keep("secret key", credential.secret_key);
  const token = await cli(["tokens", "create", "--project", P, "--role", "admin"]);
  adminToken = String(token.token);
  keep("token", adminToken);
  mustShow.push({ where: "tokens create output", text: JSON.stringify(token), secret: "token" });
  const userToken = String(
    (await cli(["tokens", "create", "--project", P, "--role", "user"])).token,
  );
  keep("user token", userToken);
}, 60_000);

afterAll(async () => {
  await server?.stop();
  if (dataDir !== undefined) await removeDir(dataDir);
});

describe("secrets hygiene", () => {
  it("runs the workload over REST (AK/SK and token), gRPC and Connect", async () => {
    const byToken = { token: adminToken };
    const bySdk = { credential };

    // Keys: one made over REST (AK/SK), one by the CLI.
    const created = await rest("create-key", { key_alias: "secrets-main" }, bySdk);
    expect(created.status).toBe(200);
    const keyId = String((created.json.key_info as Record<string, unknown>).key_id);
    const otherKeyId = String(
      (
        (await cli(["keys", "create", "--project", P, "--alias", "secrets-other"])) as {
          key_id: string;
        }
      ).key_id,
    );

    // REST: encrypt and decrypt with distinctive plaintexts and contexts, by both credentials.
    const context = { tenant: keep("context value", canary("ctx")) as string };
    const encrypted: string[] = [];
    for (const [name, auth] of [
      ["token", byToken],
      ["sdk", bySdk],
    ] as const) {
      const plainText = keep(`REST ${name} plaintext`, canary(`plain-rest-${name}`)) as string;
      const reply = await rest(
        "encrypt-data",
        { key_id: keyId, plain_text: plainText, encryption_context: context },
        auth,
      );
      expect(reply.status).toBe(200);
      const cipherText = String(reply.json.cipher_text);
      encrypted.push(cipherText);
      const decrypted = await rest(
        "decrypt-data",
        { cipher_text: cipherText, encryption_context: context },
        auth,
      );
      expect(decrypted.json.plain_text).toBe(plainText);
    }
    const [cipherText = ""] = encrypted;

    // Data keys: made by kmsd (their plaintexts are secrets), and one of ours wrapped.
    const dataKey = await rest("create-datakey", { key_id: keyId, datakey_length: "256" }, bySdk);
    expect(dataKey.status).toBe(200);
    keep("data key from create-datakey", Buffer.from(String(dataKey.json.plain_text), "hex"));
    mustShow.push({
      where: "create-datakey answer",
      text: JSON.stringify(dataKey.json),
      secret: "data key from create-datakey",
    });
    const unwrapped = await rest(
      "decrypt-datakey",
      { key_id: keyId, cipher_text: dataKey.json.cipher_text, datakey_cipher_length: "32" },
      byToken,
    );
    expect(unwrapped.json.data_key).toBe(String(dataKey.json.plain_text).toUpperCase());
    const withoutPlain = await rest(
      "create-datakey-without-plaintext",
      { key_id: keyId, datakey_length: "512" },
      byToken,
    );
    const hidden = await rest(
      "decrypt-datakey",
      { key_id: keyId, cipher_text: withoutPlain.json.cipher_text, datakey_cipher_length: "64" },
      byToken,
    );
    keep(
      "data key from create-datakey-without-plaintext",
      Buffer.from(String(hidden.json.data_key), "hex"),
    );
    const ownDataKey = keep("our data key", randomBytes(32)) as Uint8Array;
    const wrapped = await rest(
      "encrypt-datakey",
      {
        key_id: keyId,
        plain_text: withDigest(Buffer.from(ownDataKey)),
        datakey_plain_length: "32",
      },
      bySdk,
    );
    expect(wrapped.status).toBe(200);

    // Random bytes, batches, re-encryption.
    const random = await rest("gen-random", { random_data_length: "512" }, byToken);
    keep("random data", Buffer.from(String(random.json.random_data), "hex"));
    const batchPlain = [canary("plain-batch-a"), canary("plain-batch-b")].map(
      (text, i) => keep(`batch plaintext ${i}`, text) as string,
    );
    const batch = await rest(
      "batch-encrypt-data",
      {
        items: batchPlain.map((plain_text, i) => ({
          reference: `r${i}`,
          key_id: keyId,
          plain_text,
          encryption_context: context,
        })),
      },
      bySdk,
    );
    expect(batch.status).toBe(200);
    const batchItems = batch.json.items as { cipher_text: string }[];
    const batchDecrypted = await rest(
      "batch-decrypt-data",
      {
        items: batchItems.map((item, i) => ({
          reference: `r${i}`,
          cipher_text: item.cipher_text,
          encryption_context: context,
        })),
      },
      byToken,
    );
    expect(batchDecrypted.status).toBe(200);
    const reEncrypted = await rest(
      "re-encrypt",
      {
        cipher_text: cipherText,
        destination_key_id: otherKeyId,
        source_encryption_context: context,
        destination_encryption_context: context,
      },
      byToken,
    );
    expect(reEncrypted.status).toBe(200);

    // REST refusals, several carrying secret-looking values.
    const wrongSecret = keep("wrong secret key", canary("wrong-sk")) as string;
    const badToken = keep("bad token", `kmsd_${canary("badtoken")}`) as string;
    const refusals: [
      string,
      unknown,
      { token: string } | { credential: TestCredential },
      number,
    ][] = [
      [
        "encrypt-data",
        { key_id: keyId, plain_text: "x" },
        { credential: { ...credential, secret_key: wrongSecret } },
        401,
      ],
      ["encrypt-data", { key_id: keyId, plain_text: "x" }, { token: badToken }, 401],
      ["encrypt-data", { key_id: keyId, plain_text: "x" }, { token: credential.secret_key }, 401],
      ["decrypt-data", { cipher_text: `${cipherText.slice(0, -12)}AAAAAAAAAAA=` }, byToken, 400],
      [
        "decrypt-data",
        { cipher_text: cipherText, encryption_context: { tenant: canary("wrongctx") } },
        byToken,
        400,
      ],
      [
        "encrypt-data",
        {
          key_id: keyId,
          plain_text: (keep("long plaintext", canary("plain-long")) as string).repeat(200),
        },
        byToken,
        400,
      ],
      [
        "encrypt-data",
        { key_id: keyId, plain_text: { nested: keep("nested plaintext", canary("plain-nested")) } },
        byToken,
        400,
      ],
      [
        "encrypt-data",
        { key_id: keepIdentifier("key id shaped secret", canary("keyid")), plain_text: "x" },
        byToken,
        400,
      ],
      [
        "encrypt-data",
        {
          key_id: keyId,
          plain_text: "x",
          sequence: keepIdentifier("sequence shaped secret", canary("seq")),
        },
        byToken,
        400,
      ],
      [
        "encrypt-data",
        {
          key_id: keyId,
          plain_text: "x",
          encryption_context: {
            k: keep("context value too long", canary("ctx-long")).toString().repeat(300),
          },
        },
        byToken,
        400,
      ],
      [
        "encrypt-datakey",
        {
          key_id: keyId,
          plain_text: `${Buffer.from(keep("bad data key", randomBytes(32)) as Uint8Array).toString("hex")}${"0".repeat(64)}`,
          datakey_plain_length: "32",
        },
        byToken,
        400,
      ],
      [
        "decrypt-data",
        `{"cipher_text": "${keep("plaintext in broken JSON", canary("plain-broken"))}"`,
        byToken,
        400,
      ],
    ];
    for (const [action, body, auth, status] of refusals) {
      expect(
        (await rest(action, body, auth)).status,
        `${action} ${JSON.stringify(body).slice(0, 80)}`,
      ).toBe(status);
    }
    const unknownPath = await sendRaw(
      `${server.url}/v1.0/${P}/kms/no-such-api?plain_text=${keep("query plaintext", canary("plain-query"))}`,
      {
        headers: { "x-auth-token": adminToken, "content-type": "application/json" },
        body: "{}",
      },
    );
    expect(unknownPath.status).toBe(404);
    errorAnswers.push(JSON.stringify(unknownPath.headers), unknownPath.text);

    // gRPC: token, AK/SK signed (the documented way), and refusals.
    const grpcClient: KmsGrpcClient = createKmsGrpcClient(server.port);
    const signedGrpc = new SignedGrpc(server.port);
    try {
      const metadata = new grpc.Metadata();
      metadata.set("x-auth-token", adminToken);
      /** The answer of a gRPC call that must fail, as text. */
      const grpcFailure = async (method: KmsMethod, request: GrpcMessage, sent = metadata) =>
        grpcFailureText(await grpcClient.call(method, request, sent).catch((e: unknown) => e));
      const grpcPlain = keep("gRPC plaintext", canary("plain-grpc")) as string;
      const sealed = await grpcClient.call(
        "EncryptData",
        { project_id: P, key_id: keyId, plain_text: grpcPlain, encryption_context: context },
        metadata,
      );
      const opened = await grpcClient.call(
        "DecryptData",
        { project_id: P, cipher_text: sealed.cipher_text, encryption_context: context },
        metadata,
      );
      expect(opened.plain_text).toBe(grpcPlain);
      const signedPlain = keep("gRPC AK/SK plaintext", canary("plain-grpc-aksk")) as string;
      const signed = await signedGrpc.call(credential, "EncryptData", {
        project_id: P,
        key_id: keyId,
        plain_text: signedPlain,
      });
      expect(signed.ok).toBe(true);
      const badSignature = await signedGrpc.call(
        { ...credential, secret_key: wrongSecret },
        "EncryptData",
        { project_id: P, key_id: keyId, plain_text: signedPlain },
      );
      expect(badSignature.ok).toBe(false);
      errorAnswers.push(JSON.stringify(badSignature));
      const wrongToken = new grpc.Metadata();
      wrongToken.set("x-auth-token", badToken);
      errorAnswers.push(
        await grpcFailure(
          "EncryptData",
          { project_id: P, key_id: keyId, plain_text: grpcPlain },
          wrongToken,
        ),
      );
      errorAnswers.push(
        await grpcFailure("DecryptData", {
          project_id: P,
          cipher_text: `${String(sealed.cipher_text).slice(0, -12)}AAAAAAAAAAA=`,
        }),
      );
      errorAnswers.push(
        await grpcFailure("EncryptData", {
          project_id: P,
          key_id: keepIdentifier("gRPC key id secret", canary("grpc-keyid")),
          plain_text: grpcPlain,
        }),
      );
      errorAnswers.push(
        await grpcFailure("EncryptData", {
          project_id: P,
          key_id: keyId,
          plain_text: (keep("gRPC long plaintext", canary("plain-grpc-long")) as string).repeat(
            200,
          ),
        }),
      );
      const grpcData = await grpcClient.call(
        "CreateDatakey",
        { project_id: P, key_id: keyId, datakey_length: "128" },
        metadata,
      );
      keep("gRPC data key", Buffer.from(String(grpcData.plain_text), "hex"));
    } finally {
      grpcClient.close();
      signedGrpc.close();
    }

    // Connect: token (JSON) and AK/SK (binary), and refusals.
    const withToken: Interceptor = (next) => async (request) => {
      request.header.set("x-auth-token", adminToken);
      return next(request);
    };
    const connect = createClient(
      KmsService,
      createConnectTransport({
        baseUrl: server.url,
        httpVersion: "1.1",
        interceptors: [withToken],
      }),
    );
    const connectSigned = createClient(
      KmsService,
      createConnectTransport({
        baseUrl: server.url,
        httpVersion: "1.1",
        useBinaryFormat: true,
        interceptors: [signingInterceptor(credential, `127.0.0.1:${server.port}`, "binary")],
      }),
    );
    const connectPlain = keep("Connect plaintext", canary("plain-connect")) as string;
    const connectSealed = await connect.encryptData({
      projectId: P,
      keyId,
      plainText: connectPlain,
      encryptionContext: context,
    });
    const connectOpened = await connectSigned.decryptData({
      projectId: P,
      cipherText: connectSealed.cipherText,
      encryptionContext: context,
    });
    expect(connectOpened.plainText).toBe(connectPlain);
    const connectData = await connectSigned.createDatakey({
      projectId: P,
      keyId,
      datakeyLength: "256",
    });
    keep("Connect data key", Buffer.from(connectData.plainText, "hex"));
    const connectRandom = await connect.genRandom({ projectId: P, randomDataLength: "256" });
    keep("Connect random data", Buffer.from(connectRandom.randomData, "hex"));
    errorAnswers.push(
      await connectFailure(
        connect.decryptData({
          projectId: P,
          cipherText: `${connectSealed.cipherText.slice(0, -12)}AAAAAAAAAAA=`,
        }),
      ),
    );
    errorAnswers.push(
      await connectFailure(
        connect.encryptData({
          projectId: P,
          keyId,
          plainText: (
            keep("Connect long plaintext", canary("plain-connect-long")) as string
          ).repeat(200),
        }),
      ),
    );
    errorAnswers.push(
      await connectFailure(
        connect.encryptData({
          projectId: P,
          keyId: keepIdentifier("Connect key id secret", canary("connect-keyid")),
          plainText: "x",
        }),
      ),
    );
    const badConnect = createClient(
      KmsService,
      createConnectTransport({
        baseUrl: server.url,
        httpVersion: "1.1",
        useBinaryFormat: true,
        interceptors: [
          signingInterceptor(
            { ...credential, secret_key: wrongSecret },
            `127.0.0.1:${server.port}`,
            "binary",
          ),
        ],
      }),
    );
    errorAnswers.push(
      await connectFailure(
        badConnect.encryptData({ projectId: P, keyId, plainText: connectPlain }),
      ),
    );

    // The key material of both keys, from the store.
    const rootBytes = Buffer.from(TEST_ROOT_KEY, "base64");
    const store = await openSqliteStore({ dataDir });
    try {
      for (const id of [keyId, otherKeyId]) {
        const version = await store.getKeyVersion(id, 1);
        if (version === undefined) throw new Error(`no version 1 of ${id}`);
        keep(
          `key material of ${id}`,
          unwrapKeyMaterial(rootBytes, { keyId: id, version: 1 }, version.wrappedMaterial),
        );
      }
      expect(rootKeyId(rootBytes)).not.toBe("");
    } finally {
      await store.close();
    }

    metricsText = await (await fetch(`${server.url}/metrics`)).text();
    // Stop the server so that its output and audit trail are complete.
    await server.stop();
    serverOutput = `${server.process.stdout()}\n${server.process.stderr()}`;
    const exported = await runCli(["audit", "export"], dataDir);
    expect(exported.code, exported.stderr).toBe(0);
    cliDiagnostics.push(exported.stderr);
    auditText = exported.stdout;
  }, 60_000);

  it("captured what it searches: debug request lines, audit records, metrics, error answers", () => {
    const lines = serverOutput.split("\n").filter((line) => line.startsWith("{"));
    expect(lines.filter((line) => line.includes('"msg":"request"')).length).toBeGreaterThan(20);
    expect(lines.some((line) => line.includes('"msg":"request failed"'))).toBe(true);
    expect(auditText.split("\n").length).toBeGreaterThan(40);
    expect(auditText).toContain('"outcome":"APIGW.0301"');
    expect(metricsText).toContain("kmsd_rpc_requests_total");
    expect(errorAnswers.length).toBeGreaterThan(20);
    expect(secrets.length).toBeGreaterThan(30);
  });

  it("the search finds a secret wherever it is, in every form", () => {
    const secret = "canary-self-check-0123456789";
    const bytes = randomBytes(24);
    for (const form of [...secretForms(secret), ...secretForms(bytes)]) {
      const findings = findSecrets({ text: `{"x":"…${form}…"}` }, [
        { name: "text", value: secret },
        { name: "bytes", value: bytes },
      ]);
      expect(findings.length, form).toBe(1);
    }
    expect(findSecrets({ text: "nothing here" }, [{ name: "text", value: secret }])).toEqual([]);
    // On real answers: a token as the CLI prints it, a data key as kmsd returns it.
    for (const control of mustShow) {
      const found = findSecrets({ [control.where]: control.text }, secrets).map(
        (finding) => finding.secret,
      );
      expect(found, control.where).toContain(control.secret);
    }
  });

  it("no secret is in the logs, the audit trail, /metrics or any error answer", () => {
    const outsideAudit = {
      "kmsd output": serverOutput,
      "CLI diagnostics": cliDiagnostics.join("\n"),
      metrics: metricsText,
      "error answers": errorAnswers.join("\n"),
    };
    expect(findSecrets({ ...outsideAudit, "audit trail": auditText }, secrets)).toEqual([]);
    expect(findSecrets(outsideAudit, identifiers)).toEqual([]);
  });

  it("refused identifiers are in the audit trail as sent (the search finds them there)", () => {
    expect(identifiers.length).toBe(4);
    const found = findSecrets({ "audit trail": auditText }, identifiers).map((f) => f.secret);
    expect(found.sort()).toEqual(identifiers.map((identifier) => identifier.name).sort());
  });
});
