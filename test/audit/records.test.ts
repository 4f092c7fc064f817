import { createHash, randomBytes } from "node:crypto";
import { userInfo } from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openSqliteDatabase } from "../../src/keystore/sqlite/driver.js";
import { createKmsGrpcClient, type GrpcCallError } from "../support/grpc-client.js";
import { type RunningKmsd, removeDir, startKmsd, tempDataDir } from "../support/kmsd.js";
import {
  type Answer,
  AUDIT_JSON_FIELDS,
  type AuditJson,
  cliJson,
  exportAudit,
  postJson,
  signedHeaders,
  storeBytes,
  UUID,
} from "./cli-helpers.js";

/**
 * One audit record per request, whatever the protocol and however far the
 * request got, with the fields the issue lists and never a secret. A real
 * server on a real data directory; the trail is read back with the CLI.
 */

const P = "paudit";
const OTHER = "pother";
const MAX_BODY = 4096;
/** Distinctive values that must never reach the trail. */
const mark = (what: string) => `${what}-${randomBytes(6).toString("hex")}`;
const PLAIN = [mark("PLAINTEXT1"), mark("PLAINTEXT2"), mark("PLAINTEXT3"), mark("PLAINTEXT4")];
const CTX_A = mark("CTXVALUE-A");
const CTX_B = mark("CTXVALUE-B");
const CTX_C = mark("CTXVALUE-C");
const SEQUENCE = "919c82d4-8046-4722-9094-35c3c6524cff";
const QUERY_SECRET = mark("QUERYSECRET");

interface Issued {
  readonly access_key: string;
  readonly secret_key: string;
  readonly token: string;
  readonly token_id: string;
}

/** What a test learns of a request: when it was sent and answered, and its id. */
interface Sent {
  readonly requestId: string;
  readonly before: number;
  readonly after: number;
  readonly status: number | string;
  readonly code: string;
}

let dataDir: string;
let keyId: string;
let cliKeyRecordTime: { before: number; after: number };
let issued: Issued;
const sent = new Map<string, Sent>();
const cipherTexts: string[] = [];
const signatures: string[] = [];
let records: AuditJson[];
let exported: string;

/** Sends a REST request and remembers it under `name`. */
async function rest(
  name: string,
  url: string,
  body: unknown,
  headers: Record<string, string>,
  method = "POST",
): Promise<Answer> {
  const signature = /Signature=([0-9a-f]{64})/.exec(headers.authorization ?? "")?.[1];
  if (signature !== undefined) signatures.push(signature);
  const before = Date.now();
  const answer = await postJson(url, body, headers, method);
  const after = Date.now();
  const json = answer.json as
    | { error?: { error_code?: string }; error_code?: string; cipher_text?: string }
    | undefined;
  const code = json?.error?.error_code ?? json?.error_code ?? "OK";
  if (typeof json?.cipher_text === "string") cipherTexts.push(json.cipher_text);
  sent.set(name, { requestId: answer.requestId, before, after, status: answer.status, code });
  return answer;
}

function recordOf(name: string): AuditJson {
  const request = sent.get(name);
  expect(request, `request ${name} was sent`).toBeDefined();
  const matching = records.filter((record) => record.request_id === request?.requestId);
  expect(matching, `records of ${name} (${request?.requestId})`).toHaveLength(1);
  const [record] = matching as [AuditJson];
  const time = Date.parse(record.time);
  expect(time).toBeGreaterThanOrEqual(request?.before ?? 0);
  expect(time).toBeLessThanOrEqual(request?.after ?? 0);
  expect(record.latency_us).toBeGreaterThan(0);
  expect(record.latency_us).toBeLessThanOrEqual(((request?.after ?? 0) - time + 1) * 1000);
  return record;
}

beforeAll(async () => {
  dataDir = await tempDataDir();
  // The real CLI makes the credential, the token and a key (and records doing so).
  const credential = await cliJson<{ access_key: string; secret_key: string }>(
    ["credentials", "create", "--project", P, "--role", "admin"],
    dataDir,
  );
  const token = await cliJson<{ token: string; token_id: string }>(
    ["tokens", "create", "--project", P, "--role", "admin", "--ttl", "1h"],
    dataDir,
  );
  issued = { ...credential, ...token };
  const before = Date.now();
  const key = await cliJson<{ key_id: string }>(
    ["keys", "create", "--project", P, "--alias", "audited"],
    dataDir,
  );
  cliKeyRecordTime = { before, after: Date.now() };
  keyId = key.key_id;

  const kmsd = await startKmsd({ dataDir, maxBodyBytes: MAX_BODY });
  try {
    const base = `${kmsd.url}/v1.0/${P}/kms`;
    const byToken = { "x-auth-token": issued.token };

    // A successful encrypt over each protocol.
    const restBody = {
      key_id: keyId,
      plain_text: PLAIN[0],
      encryption_context: { dept: CTX_A, purpose: CTX_B },
      sequence: SEQUENCE,
    };
    await rest("rest-token", `${base}/encrypt-data`, restBody, byToken);
    const signedBody = JSON.stringify({
      key_id: keyId,
      plain_text: PLAIN[1],
      encryption_context: { dept: CTX_A, purpose: CTX_C },
    });
    await rest(
      "rest-aksk",
      `${base}/encrypt-data`,
      signedBody,
      signedHeaders(issued, `${base}/encrypt-data`, signedBody),
    );
    const connectUrl = `${kmsd.url}/kms.v1.KmsService/EncryptData`;
    const connectBody = JSON.stringify({
      project_id: P,
      key_id: keyId,
      plain_text: PLAIN[2],
      encryption_context: { dept: CTX_A },
    });
    await rest(
      "connect-aksk",
      connectUrl,
      connectBody,
      signedHeaders(issued, connectUrl, connectBody),
    );
    const client = createKmsGrpcClient(kmsd.port);
    try {
      const metadata = new grpc.Metadata();
      metadata.set("x-auth-token", issued.token);
      const before = Date.now();
      const reply = await client.callWithMetadata(
        "EncryptData",
        { project_id: P, key_id: keyId, plain_text: PLAIN[3], encryption_context: { dept: CTX_B } },
        metadata,
      );
      cipherTexts.push(String(reply.response.cipher_text));
      sent.set("grpc-token", {
        requestId: String(reply.headers.get("x-request-id")[0]),
        before,
        after: Date.now(),
        status: 0,
        code: "OK",
      });

      // An authentication failure over gRPC: a token that does not exist.
      const forged = new grpc.Metadata();
      forged.set("x-auth-token", `kmsd_${randomBytes(32).toString("base64url")}`);
      const failedAt = Date.now();
      const error = await client
        .call("EncryptData", { project_id: P, key_id: keyId, plain_text: PLAIN[3] }, forged)
        .then(
          () => undefined,
          (reason: GrpcCallError) => reason,
        );
      expect(error?.code).toBe(grpc.status.UNAUTHENTICATED);
      const id =
        error?.responseHeaders?.get("x-request-id")[0] ?? error?.metadata.get("x-request-id")[0];
      sent.set("grpc-unauthenticated", {
        requestId: String(id),
        before: failedAt,
        after: Date.now(),
        status: error?.code ?? -1,
        code: "APIGW.0301",
      });
    } finally {
      client.close();
    }

    // A decrypt: the ciphertext goes in, the plaintext comes out; neither is recorded.
    const decrypted = await rest(
      "rest-decrypt",
      `${base}/decrypt-data`,
      { cipher_text: cipherTexts[0], encryption_context: { dept: CTX_A, purpose: CTX_B } },
      byToken,
    );
    expect(decrypted.status, decrypted.text).toBe(200);

    // Refusals: validation, authentication, and those before any RPC.
    await rest(
      "invalid-key-id",
      `${base}/encrypt-data`,
      { key_id: "not-a-key-id", plain_text: PLAIN[0] },
      byToken,
    );
    await rest(
      "no-credential",
      `${base}/encrypt-data`,
      { key_id: keyId, plain_text: PLAIN[0] },
      {},
    );
    await rest(
      "unknown-path",
      `${base}/no-such-api?token=${QUERY_SECRET}`,
      { plain_text: PLAIN[0] },
      byToken,
    );
    await rest("wrong-method", `${base}/encrypt-data`, undefined, byToken, "GET");
    await rest("not-json", `${base}/encrypt-data`, `{"plain_text": "${PLAIN[0]}"`, byToken);
    await rest(
      "too-large",
      `${base}/encrypt-data`,
      { key_id: keyId, plain_text: `${PLAIN[0]}${"x".repeat(MAX_BODY)}` },
      byToken,
    );
    // Another project's request, for the isolation check.
    await rest(
      "other-project",
      `${kmsd.url}/v1.0/${OTHER}/kms/list-keys`,
      {},
      { "x-auth-token": issued.token },
    );
  } finally {
    // A graceful stop writes the whole trail out.
    await kmsd.stop();
  }
  ({ records, text: exported } = await exportAudit(dataDir));
});

afterAll(async () => {
  await removeDir(dataDir);
});

describe("one audit record per request", () => {
  it("every record has exactly the documented fields, in seq order from 1", () => {
    expect(records.length).toBeGreaterThan(10);
    records.forEach((record, index) => {
      expect(Object.keys(record).sort()).toEqual(AUDIT_JSON_FIELDS);
      expect(record.seq).toBe(index + 1);
      expect(record.request_id).toMatch(UUID);
      expect(record.format).toBe(2);
      expect(record.seal === null || /^[0-9a-f]{64}$/.test(record.seal)).toBe(true);
    });
    // The last record of every append is sealed: the newest always is.
    expect(records.at(-1)?.seal).toMatch(/^[0-9a-f]{64}$/);
    expect(new Set(records.map((record) => record.request_id)).size).toBe(records.length);
  });

  it("a REST encrypt with a token: protocol, project, token id, key, sequence, OK, latency", () => {
    expect(sent.get("rest-token")?.status).toBe(200);
    expect(recordOf("rest-token")).toMatchObject({
      protocol: "rest",
      project_id: P,
      principal: `token:${issued.token_id}`,
      operation: "EncryptData",
      key_id: keyId,
      sequence: SEQUENCE,
      outcome: "OK",
    });
  });

  it("a REST encrypt signed with an access key records the access key", () => {
    expect(sent.get("rest-aksk")?.status).toBe(200);
    expect(recordOf("rest-aksk")).toMatchObject({
      protocol: "rest",
      project_id: P,
      principal: issued.access_key,
      operation: "EncryptData",
      key_id: keyId,
      sequence: "",
      outcome: "OK",
    });
  });

  it("a Connect encrypt signed with an access key", () => {
    expect(sent.get("connect-aksk")?.status).toBe(200);
    expect(recordOf("connect-aksk")).toMatchObject({
      protocol: "connect",
      project_id: P,
      principal: issued.access_key,
      operation: "EncryptData",
      key_id: keyId,
      outcome: "OK",
    });
  });

  it("a gRPC encrypt with a token", () => {
    expect(recordOf("grpc-token")).toMatchObject({
      protocol: "grpc",
      project_id: P,
      principal: `token:${issued.token_id}`,
      operation: "EncryptData",
      key_id: keyId,
      outcome: "OK",
    });
  });

  it("a decrypt records the key from the ciphertext, never the ciphertext", () => {
    expect(recordOf("rest-decrypt")).toMatchObject({
      protocol: "rest",
      project_id: P,
      principal: `token:${issued.token_id}`,
      operation: "DecryptData",
      key_id: keyId,
      outcome: "OK",
    });
  });

  it("encryption context keys are recorded with keyed hashes of their values", () => {
    const restToken = recordOf("rest-token").context;
    const restAksk = recordOf("rest-aksk").context;
    const connect = recordOf("connect-aksk").context;
    const grpcToken = recordOf("grpc-token").context;
    expect(Object.keys(restToken).sort()).toEqual(["dept", "purpose"]);
    expect(Object.keys(restAksk).sort()).toEqual(["dept", "purpose"]);
    expect(Object.keys(connect)).toEqual(["dept"]);
    expect(Object.keys(grpcToken)).toEqual(["dept"]);
    for (const hash of [...Object.values(restToken), ...Object.values(restAksk)]) {
      expect(hash).toMatch(/^[0-9a-f]{32}$/);
    }
    // Equal values, equal hashes (whatever the key or protocol); different values, different hashes.
    expect(restAksk.dept).toBe(restToken.dept);
    expect(connect.dept).toBe(restToken.dept);
    expect(grpcToken.dept).toBe(restToken.purpose);
    expect(restAksk.purpose).not.toBe(restToken.purpose);
    expect(restToken.dept).not.toBe(restToken.purpose);
    // Keyed: not a plain SHA-256 of the value, which anyone could compute from a guess.
    for (const value of [CTX_A, CTX_B, CTX_C]) {
      const plain = createHash("sha256").update(value).digest("hex");
      expect(exported).not.toContain(plain.slice(0, 32));
    }
    // The decrypt's context is recorded the same way.
    expect(recordOf("rest-decrypt").context).toEqual(restToken);
  });

  it("a validation failure records its Huawei code", () => {
    const request = sent.get("invalid-key-id");
    expect(request?.status).toBe(400);
    expect(request?.code).toMatch(/^KMS\.\d{4}$/);
    expect(recordOf("invalid-key-id")).toMatchObject({
      protocol: "rest",
      project_id: P,
      principal: `token:${issued.token_id}`,
      operation: "EncryptData",
      key_id: "not-a-key-id",
      outcome: request?.code,
    });
  });

  it("an authentication failure records no principal and APIGW.0301", () => {
    expect(sent.get("no-credential")).toMatchObject({ status: 401, code: "APIGW.0301" });
    expect(recordOf("no-credential")).toMatchObject({
      protocol: "rest",
      project_id: P,
      principal: "",
      operation: "EncryptData",
      outcome: "APIGW.0301",
    });
    expect(recordOf("grpc-unauthenticated")).toMatchObject({
      protocol: "grpc",
      project_id: P,
      principal: "",
      operation: "EncryptData",
      outcome: "APIGW.0301",
    });
  });

  it.each([
    ["unknown-path", 404, "APIGW.0101", `POST /v1.0/${P}/kms/no-such-api`, ""],
    ["wrong-method", 405, "KMS.0215", `GET /v1.0/${P}/kms/encrypt-data`, ""],
    ["too-large", 400, "KMS.0203", `POST /v1.0/${P}/kms/encrypt-data`, P],
  ])(
    "a request refused before any RPC (%s) records METHOD /path and its code",
    (name, status, code, operation, project) => {
      expect(sent.get(name)).toMatchObject({ status, code });
      expect(recordOf(name)).toEqual({
        seq: expect.any(Number),
        time: expect.any(String),
        request_id: sent.get(name)?.requestId,
        protocol: "rest",
        project_id: project,
        principal: "",
        operation,
        key_id: "",
        sequence: "",
        outcome: code,
        latency_us: expect.any(Number),
        context: {},
        format: 2,
        seal: expect.toBeOneOf([null, expect.stringMatching(/^[0-9a-f]{64}$/)]),
      });
    },
  );

  it("a body that is not JSON is answered after authentication, recorded under its RPC", () => {
    expect(sent.get("not-json")).toMatchObject({ status: 400, code: "KMS.0202" });
    expect(recordOf("not-json")).toMatchObject({
      request_id: sent.get("not-json")?.requestId,
      protocol: "rest",
      project_id: P,
      principal: `token:${issued.token_id}`,
      operation: "EncryptData",
      outcome: "KMS.0202",
      context: {},
    });
  });

  it("a CLI admin command records protocol cli and the local user", () => {
    const created = records.filter(
      (record) => record.operation === "CreateKey" && record.key_id === keyId,
    );
    expect(created).toHaveLength(1);
    const [record] = created as [AuditJson];
    expect(record).toMatchObject({
      request_id: expect.stringMatching(UUID),
      protocol: "cli",
      project_id: P,
      principal: `cli:${userInfo().username}`,
      outcome: "OK",
      context: {},
    });
    expect(record.latency_us).toBeGreaterThan(0);
    const time = Date.parse(record.time);
    expect(time).toBeGreaterThanOrEqual(cliKeyRecordTime.before);
    expect(time).toBeLessThanOrEqual(cliKeyRecordTime.after);
  });

  it("credential and token commands are recorded with the access key or token id, never the secret", () => {
    const cli = `cli:${userInfo().username}`;
    expect(records.filter((record) => record.operation === "CreateCredential")).toEqual([
      expect.objectContaining({
        protocol: "cli",
        principal: cli,
        project_id: P,
        key_id: issued.access_key,
        outcome: "OK",
      }),
    ]);
    expect(records.filter((record) => record.operation === "CreateToken")).toEqual([
      expect.objectContaining({
        protocol: "cli",
        principal: cli,
        project_id: P,
        key_id: issued.token_id,
        outcome: "OK",
      }),
    ]);
  });

  it("the trail holds no plaintext, ciphertext, context value, token, secret key or signature", async () => {
    expect(cipherTexts).toHaveLength(4);
    expect(signatures).toHaveLength(2);
    const forbidden = [
      ...signatures,
      ...PLAIN,
      ...PLAIN.map((text) => Buffer.from(text).toString("base64")),
      ...cipherTexts,
      CTX_A,
      CTX_B,
      CTX_C,
      issued.token,
      issued.secret_key,
      QUERY_SECRET,
    ];
    // Every record, as exported.
    for (const secret of forbidden) expect(exported).not.toContain(secret);
    // Every row of the audit table, as stored.
    const db = openSqliteDatabase(path.join(dataDir, "kmsd.db"), { readonly: true });
    let rows: string;
    try {
      rows = JSON.stringify([
        db.prepare("SELECT * FROM audit_appends").all(),
        db.prepare("SELECT * FROM audit_append_projects").all(),
      ]);
    } finally {
      db.close();
    }
    expect(rows).toContain(keyId);
    for (const secret of forbidden) expect(rows).not.toContain(secret);
    // And the store's bytes as a whole (which hold wrapped key material, but
    // none of these): nothing lingers in a page, a free page or the WAL.
    const bytes = await storeBytes(dataDir);
    for (const secret of forbidden) {
      expect(bytes.indexOf(Buffer.from(secret)), secret).toBe(-1);
    }
  });

  it("records name the project the request addressed", async () => {
    expect(recordOf("other-project")).toMatchObject({
      project_id: OTHER,
      principal: `token:${issued.token_id}`,
      operation: "ListKeys",
    });
    expect(sent.get("other-project")?.status).toBe(403);
    const own = await exportAudit(dataDir, ["--project", P]);
    expect(own.records.map((record) => record.project_id)).toEqual(own.records.map(() => P));
    expect(
      own.records.some((record) => record.request_id === sent.get("other-project")?.requestId),
    ).toBe(false);
  });
});

describe("requests gRPC and Connect refuse before any RPC", () => {
  let kmsd: RunningKmsd;
  let token: string;
  let tokenPrincipal: string;
  const rpcPath = "/kms.v1.KmsService/EncryptData";

  beforeAll(async () => {
    kmsd = await startKmsd({ dataDir, maxBodyBytes: MAX_BODY });
    const issued = await cliJson<{ token: string; token_id: string }>(
      ["tokens", "create", "--project", P, "--role", "user"],
      dataDir,
    );
    token = issued.token;
    tokenPrincipal = `token:${issued.token_id}`;
  });

  afterAll(async () => {
    await kmsd?.stop();
  });

  /** The records of one request id, once the server wrote them. */
  async function recordsOf(requestId: string): Promise<AuditJson[]> {
    expect(requestId).toMatch(UUID);
    await kmsd.server.stop();
    const { records: trail } = await exportAudit(dataDir);
    kmsd = await startKmsd({ dataDir, maxBodyBytes: MAX_BODY });
    return trail.filter((record) => record.request_id === requestId);
  }

  /**
   * A body that cannot be decoded is answered after authentication, so its
   * record names the caller; one refused while being read (too large) does not.
   */
  async function expectConnectRecord(
    body: string | undefined,
    contentType: string,
    method: string,
    principal: () => string = () => "",
  ): Promise<void> {
    const answer = await postJson(
      `${kmsd.url}${rpcPath}`,
      body,
      { "content-type": contentType, "x-auth-token": token },
      method,
    );
    expect(answer.status).toBeGreaterThanOrEqual(400);
    const trail = await recordsOf(answer.requestId);
    expect(trail).toEqual([
      expect.objectContaining({
        protocol: "connect",
        principal: principal(),
        outcome: expect.not.stringMatching(/^OK$/),
      }),
    ]);
  }

  it("a Connect body that is not JSON leaves one record naming the caller", async () => {
    await expectConnectRecord(
      `{"plain_text": "x"`,
      "application/json",
      "POST",
      () => tokenPrincipal,
    );
  });

  it("a Connect body that is too large leaves one record", async () => {
    const body = JSON.stringify({ plain_text: "x".repeat(MAX_BODY) });
    await expectConnectRecord(body, "application/json", "POST");
  });

  // connect-node answers these itself (415, 405) before any interceptor
  // runs; the transport records them when their response closes.
  it.each([
    ["a Connect request of an unsupported content type", "{}", "text/plain", "POST"],
    ["a Connect GET", undefined, "application/json", "GET"],
  ])("%s leaves one record", async (_name, body, contentType, method) => {
    await expectConnectRecord(body, contentType, method);
  });

  it.each([
    ["a gRPC message that cannot be parsed", Buffer.from([0xff, 0xff, 0xff]), true],
    ["a gRPC message that is too large", Buffer.alloc(MAX_BODY + 100, 0x0a), false],
  ])("%s leaves one record", async (_name, message, authenticated) => {
    const client = createKmsGrpcClient(kmsd.port);
    let requestId = "";
    try {
      const metadata = new grpc.Metadata();
      metadata.set("x-auth-token", token);
      const error = await client.callRaw(rpcPath, message, metadata).then(
        () => undefined,
        (reason: GrpcCallError) => reason,
      );
      expect(error).toBeDefined();
      requestId = String(
        error?.responseHeaders?.get("x-request-id")[0] ?? error?.metadata.get("x-request-id")[0],
      );
    } finally {
      client.close();
    }
    const trail = await recordsOf(requestId);
    expect(trail).toEqual([
      expect.objectContaining({
        protocol: "grpc",
        principal: authenticated ? tokenPrincipal : "",
        outcome: expect.not.stringMatching(/^OK$/),
      }),
    ]);
  });
});
