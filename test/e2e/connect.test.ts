/**
 * kms.v1.KmsService through connect-es clients: the Connect protocol (JSON
 * over HTTP/1.1 and h2c, binary over h2c), gRPC (h2c) and gRPC-Web
 * (HTTP/1.1), each running the same RPC and error coverage as grpc.test.ts.
 */
import http from "node:http";
import { fromBinary, fromJson, type Message, toJson } from "@bufbuild/protobuf";
import {
  type CallOptions,
  Code,
  ConnectError,
  createClient,
  type Transport,
} from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { KmsService } from "../../gen/kms/v1/kms_pb.js";
import type { KmsMethod } from "../support/grpc-client.js";
import { type RunningKmsd, startKmsd } from "../support/kmsd.js";
import {
  type CallAuth,
  describeErrorCases,
  describeRpcCases,
  Kit,
  type KmsDriver,
  type KmsReply,
  type KmsRequest,
  ProjectTokens,
  UNKNOWN_KEY_ID,
  UUID,
} from "./grpc-cases.js";
import { describeSymmetricCases } from "./symmetric-cases.js";

let kmsd: RunningKmsd;
let tokens: ProjectTokens;
const agents: http.Agent[] = [];
const sessions: Http2SessionManager[] = [];

beforeAll(async () => {
  kmsd = await startKmsd();
  tokens = await ProjectTokens.open(kmsd, "connect-home");
});

afterAll(async () => {
  for (const agent of agents) agent.destroy();
  for (const session of sessions) session.abort();
  await tokens?.close();
  await kmsd?.stop();
});

/** Headers that authenticate as an admin of the project. */
async function asAdminOf(project: string): Promise<Record<string, string>> {
  return { "x-auth-token": await tokens.for(project) };
}

async function headersFor(request: KmsRequest, auth?: CallAuth): Promise<Record<string, string>> {
  if (auth === undefined) return { "x-auth-token": await tokens.forRequest(request) };
  if (auth.kind === "x-auth-token") return { "x-auth-token": auth.token };
  if (auth.kind === "bearer") return { authorization: `Bearer ${auth.token}` };
  return {};
}

function http1(): { httpVersion: "1.1"; nodeOptions: { agent: http.Agent } } {
  const agent = new http.Agent({ keepAlive: true });
  agents.push(agent);
  return { httpVersion: "1.1", nodeOptions: { agent } };
}

function http2(): { httpVersion: "2"; sessionManager: Http2SessionManager } {
  const sessionManager = new Http2SessionManager(kmsd.url);
  sessions.push(sessionManager);
  return { httpVersion: "2", sessionManager };
}

interface TransportCase {
  readonly name: string;
  /** Project id prefix, unique per transport. */
  readonly prefix: string;
  readonly create: () => Transport;
}

const transports: TransportCase[] = [
  {
    name: "Connect JSON over HTTP/1.1",
    prefix: "cj1",
    create: () => createConnectTransport({ baseUrl: kmsd.url, useBinaryFormat: false, ...http1() }),
  },
  {
    name: "Connect JSON over h2c",
    prefix: "cj2",
    create: () => createConnectTransport({ baseUrl: kmsd.url, useBinaryFormat: false, ...http2() }),
  },
  {
    name: "Connect binary over h2c",
    prefix: "cb2",
    create: () => createConnectTransport({ baseUrl: kmsd.url, useBinaryFormat: true, ...http2() }),
  },
  {
    name: "gRPC over h2c",
    prefix: "cg2",
    create: () => createGrpcTransport({ baseUrl: kmsd.url, ...http2() }),
  },
  {
    name: "gRPC-Web over HTTP/1.1",
    prefix: "cw1",
    create: () => createGrpcWebTransport({ baseUrl: kmsd.url, ...http1() }),
  },
];

type KmsClient = ReturnType<typeof createClient<typeof KmsService>>;
type UnaryFn = (request: Message, options?: CallOptions) => Promise<Message>;

function methodOf(method: KmsMethod) {
  const desc = KmsService.methods.find((candidate) => candidate.name === method);
  if (desc === undefined) throw new Error(`KmsService has no method ${method}`);
  return desc;
}

/** Calls a method of the client by its proto name, with a snake_case JSON request. */
async function invoke(
  client: KmsClient,
  method: KmsMethod,
  request: KmsReply,
  options?: CallOptions,
): Promise<KmsReply> {
  const desc = methodOf(method);
  const fn = Reflect.get(client, desc.localName) as UnaryFn;
  const response = await fn(
    fromJson(desc.input, request as Parameters<typeof fromJson>[1]),
    options,
  );
  return toJson(desc.output, response as never, {
    useProtoFieldName: true,
    alwaysEmitImplicit: true,
  }) as KmsReply;
}

async function connectFailure(promise: Promise<unknown>): Promise<ConnectError> {
  let response: unknown;
  try {
    response = await promise;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error(`expected the call to fail, it answered ${JSON.stringify(response)}`);
}

/** Connect's name of a code: InvalidArgument is "invalid_argument". */
function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

function connectDriver(client: KmsClient): KmsDriver {
  return {
    call: async (method, request, auth) =>
      invoke(client, method, request, { headers: await headersFor(request, auth) }),
    async fail(method, request, auth) {
      const error = await connectFailure(
        invoke(client, method, request, { headers: await headersFor(request, auth) }),
      );
      const [info] = error.findDetails(ErrorInfoSchema);
      return {
        code: error.code,
        reason: info?.reason,
        domain: info?.domain,
        message: error.rawMessage,
        fullMessage: error.message,
      };
    },
    fullMessage: (code, message) => `[${codeName(code)}] ${message}`,
  };
}

describe.each(transports)("kms.v1.KmsService over $name", ({ prefix, create }) => {
  let client: KmsClient;
  let kit: Kit;

  beforeAll(() => {
    client = createClient(KmsService, create());
    kit = new Kit(connectDriver(client), tokens, prefix);
  });

  describeRpcCases(() => kit);
  describeErrorCases(() => kit);
  describeSymmetricCases(() => kit);

  it("the typed client speaks camelCase locally and Huawei's fields on the wire", async () => {
    const projectId = kit.project();
    const headers = await asAdminOf(projectId);
    const created = await client.createKey({ projectId, keyAlias: "typed" }, { headers });
    const keyId = created.keyInfo?.keyId ?? "";
    expect(keyId).toMatch(UUID);
    expect(created.keyInfo?.domainId).toBe(projectId);
    const encrypted = await client.encryptData(
      { projectId, keyId, plainText: "typed", encryptionContext: { purpose: "typed-client" } },
      { headers },
    );
    const decrypted = await client.decryptData(
      {
        projectId,
        cipherText: encrypted.cipherText,
        encryptionContext: { purpose: "typed-client" },
      },
      { headers },
    );
    expect(decrypted.plainText).toBe("typed");
    expect(decrypted.plainTextBase64).toBe(Buffer.from("typed").toString("base64"));
    const listed = await client.listKeys({ projectId }, { headers });
    expect(listed.keys).toEqual([keyId]);
    expect(listed.total).toBe(1);
    expect(listed.truncated).toBe("false");
  });

  it("a response carries an x-request-id header, new for each call", async () => {
    const ids: (string | null)[] = [];
    for (let i = 0; i < 2; i += 1) {
      const projectId = kit.project();
      await client.listKeys(
        { projectId },
        {
          headers: await asAdminOf(projectId),
          onHeader: (headers) => ids.push(headers.get("x-request-id")),
        },
      );
    }
    expect(ids).toHaveLength(2);
    expect(ids[0]).toMatch(UUID);
    expect(ids[1]).toMatch(UUID);
    expect(ids[1]).not.toBe(ids[0]);
  });

  it("an error carries an x-request-id too", async () => {
    const projectId = kit.project();
    const error = await connectFailure(
      client.describeKey(
        { projectId, keyId: UNKNOWN_KEY_ID },
        { headers: await asAdminOf(projectId) },
      ),
    );
    expect(error.code).toBe(Code.NotFound);
    expect(error.metadata.get("x-request-id")).toMatch(UUID);
  });

  it("a 1 ms timeout answers DeadlineExceeded and the server keeps serving", async () => {
    const projectId = kit.project();
    const keyId = await kit.createKey(projectId);
    const headers = await asAdminOf(projectId);
    const errors = await Promise.all(
      Array.from({ length: 10 }, () =>
        connectFailure(
          client.encryptData(
            { projectId, keyId, plainText: "z".repeat(4096) },
            { headers, timeoutMs: 1 },
          ),
        ),
      ),
    );
    for (const error of errors) expect(Code[error.code]).toBe(Code[Code.DeadlineExceeded]);
    const encrypted = await client.encryptData(
      { projectId, keyId, plainText: "after" },
      { headers },
    );
    expect(encrypted.keyId).toBe(keyId);
  });
});

describe("Connect JSON on the wire (raw fetch)", () => {
  /** POSTs a Connect JSON request as an admin of `project`. */
  const post = async (method: string, project: string, body: unknown) =>
    fetch(`${kmsd.url}/kms.v1.KmsService/${method}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(await asAdminOf(project)) },
      body: JSON.stringify(body),
    });

  it("EncryptData and DecryptData answer with Huawei's snake_case field names", async () => {
    const created = await post("CreateKey", "raw-1", { project_id: "raw-1", key_alias: "raw-key" });
    expect(created.status).toBe(200);
    const keyId = ((await created.json()) as { key_info: { key_id: string } }).key_info.key_id;
    expect(keyId).toMatch(UUID);

    const encrypted = await post("EncryptData", "raw-1", {
      project_id: "raw-1",
      key_id: keyId,
      plain_text: "12345678",
      encryption_context: { order: "42" },
    });
    expect(encrypted.status).toBe(200);
    expect(encrypted.headers.get("content-type")).toBe("application/json");
    expect(encrypted.headers.get("x-request-id")).toMatch(UUID);
    const encryptedBody = (await encrypted.json()) as Record<string, unknown>;
    expect(Object.keys(encryptedBody).sort()).toEqual(["cipher_text", "key_id"]);
    expect(encryptedBody.key_id).toBe(keyId);
    expect(encryptedBody.cipher_text).toMatch(/^[0-9a-zA-Z+/]+={0,2}$/);

    const decrypted = await post("DecryptData", "raw-1", {
      project_id: "raw-1",
      cipher_text: encryptedBody.cipher_text,
      encryption_context: { order: "42" },
    });
    expect(decrypted.status).toBe(200);
    expect(await decrypted.json()).toEqual({
      key_id: keyId,
      plain_text: "12345678",
      plain_text_base64: Buffer.from("12345678").toString("base64"),
    });
  });

  it("a camelCase request is accepted too, and answered in snake_case", async () => {
    const created = await post("CreateKey", "raw-2", { projectId: "raw-2", keyAlias: "camel" });
    expect(created.status).toBe(200);
    const body = (await created.json()) as { key_info: { key_id: string; domain_id: string } };
    expect(body).toEqual({ key_info: { key_id: expect.stringMatching(UUID), domain_id: "raw-2" } });

    const described = await post("DescribeKey", "raw-2", {
      projectId: "raw-2",
      keyId: body.key_info.key_id,
    });
    expect(described.status).toBe(200);
    const info = ((await described.json()) as { key_info: Record<string, unknown> }).key_info;
    expect(Object.keys(info).sort()).toEqual(
      [
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
      ].sort(),
    );
    expect(info).toMatchObject({ key_alias: "camel", key_state: "2", scheduled_deletion_date: "" });
  });

  it("ListKeys answers every field, total as a JSON number", async () => {
    const listed = await post("ListKeys", "raw-empty", { project_id: "raw-empty" });
    expect(listed.status).toBe(200);
    expect(await listed.json()).toEqual({
      keys: [],
      key_details: [],
      next_marker: "",
      truncated: "false",
      total: 0,
    });
  });

  it("an error body carries the code, the message and the ErrorInfo detail", async () => {
    const response = await post("EncryptData", "raw-3", {
      project_id: "raw-3",
      key_id: "not-a-key",
      plain_text: "x",
    });
    expect(response.status).toBe(400);
    expect(response.headers.get("content-type")).toBe("application/json");
    expect(response.headers.get("x-request-id")).toMatch(UUID);
    const body = (await response.json()) as {
      code: string;
      message: string;
      details: { type: string; value: string; debug?: unknown }[];
    };
    expect(body.code).toBe("invalid_argument");
    expect(body.message).toBe(
      "key_id: does not match regex pattern `^[0-9a-z]{8}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{12}$`",
    );
    expect(body.details).toHaveLength(1);
    const [detail] = body.details;
    expect(detail?.type).toBe("google.rpc.ErrorInfo");
    const info = fromBinary(ErrorInfoSchema, Buffer.from(detail?.value ?? "", "base64"));
    expect(info.reason).toBe("KMS.0205");
    expect(info.domain).toBe("kmsd");
  });

  it("a request without a credential answers 401 with ErrorInfo APIGW.0301", async () => {
    const response = await fetch(`${kmsd.url}/kms.v1.KmsService/ListKeys`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ project_id: "raw-5" }),
    });
    expect(response.status).toBe(401);
    expect(response.headers.get("x-request-id")).toMatch(UUID);
    const body = (await response.json()) as {
      code: string;
      message: string;
      details: { type: string; value: string }[];
    };
    expect(body.code).toBe("unauthenticated");
    expect(body.message).toBe(
      "no credential: sign the request with an access key (SDK-HMAC-SHA256) or send X-Auth-Token",
    );
    const [detail] = body.details;
    expect(detail?.type).toBe("google.rpc.ErrorInfo");
    expect(fromBinary(ErrorInfoSchema, Buffer.from(detail?.value ?? "", "base64")).reason).toBe(
      "APIGW.0301",
    );
  });

  it("a missing key answers 404 with ErrorInfo KMS.0207", async () => {
    const response = await post("DescribeKey", "raw-4", {
      project_id: "raw-4",
      key_id: UNKNOWN_KEY_ID,
    });
    expect(response.status).toBe(404);
    const body = (await response.json()) as {
      code: string;
      message: string;
      details: { type: string; value: string }[];
    };
    expect(body.code).toBe("not_found");
    expect(body.message).toBe(`key ${UNKNOWN_KEY_ID} does not exist`);
    const [detail] = body.details;
    expect(detail?.type).toBe("google.rpc.ErrorInfo");
    expect(fromBinary(ErrorInfoSchema, Buffer.from(detail?.value ?? "", "base64")).reason).toBe(
      "KMS.0207",
    );
  });
});
