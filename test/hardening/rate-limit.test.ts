import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { KmsService } from "../../gen/kms/v1/kms_pb.js";
import { exportAudit } from "../audit/cli-helpers.js";
import {
  createKmsGrpcClient,
  decodeStatusDetails,
  type GrpcCallError,
  type KmsGrpcClient,
} from "../support/grpc-client.js";
import { createKey, type RunningKmsd, startKmsd, testToken } from "../support/kmsd.js";

/**
 * The per-project rate limit of cryptographic operations
 * (--rate-limit-per-second, --rate-limit-burst), over every protocol. The
 * rate is low (2/s, one token every 500 ms) and the burst 3, so that a
 * burst of requests sent back to back runs the bucket dry long before it
 * refills.
 */
const RATE = { rateLimitPerSecond: 2, rateLimitBurst: 3 };
const BURST = RATE.rateLimitBurst;
/** One project per protocol, each starting from a full bucket. */
const P = {
  rest: "prl-rest",
  grpc: "prl-grpc",
  connect: "prl-connect",
  web: "prl-web",
  other: "prl-other",
};

let kmsd: RunningKmsd;
const keys: Record<string, string> = {};
const tokens: Record<string, string> = {};

beforeAll(async () => {
  kmsd = await startKmsd(RATE);
  for (const project of Object.values(P)) {
    tokens[project] = await testToken(kmsd.config, project);
    keys[project] = await createKey(kmsd.config, project, "rate");
  }
});

afterAll(() => kmsd.stop());

function restCall(project: string, action: string, body: Record<string, unknown>) {
  return fetch(`${kmsd.url}/v1.0/${project}/kms/${action}`, {
    method: "POST",
    headers: { "x-auth-token": tokens[project] ?? "", "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

const encryptBody = (project: string) => ({ key_id: keys[project], plain_text: "12345678" });

describe("REST", () => {
  const project = P.rest;

  it("passes the burst, then answers 429 APIGW.0308 (flat body, Retry-After), then refills", async () => {
    for (let i = 0; i < BURST; i++) {
      expect((await restCall(project, "encrypt-data", encryptBody(project))).status).toBe(200);
    }
    const refused = await restCall(project, "encrypt-data", encryptBody(project));
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("1");
    const body = (await refused.json()) as Record<string, unknown>;
    expect(body).toEqual({
      error_code: "APIGW.0308",
      error_msg: expect.any(String),
      request_id: refused.headers.get("x-request-id"),
    });
    // Every cryptographic operation draws on the same bucket.
    expect((await restCall(project, "gen-random", { random_data_length: "256" })).status).toBe(429);

    // Non-cryptographic RPCs are not limited, however many.
    for (let i = 0; i < 2 * BURST; i++) {
      expect((await restCall(project, "list-keys", {})).status).toBe(200);
    }
    // Other projects keep their own buckets.
    expect((await restCall(P.other, "gen-random", { random_data_length: "256" })).status).toBe(200);

    // One token every 500 ms.
    await sleep(600);
    expect((await restCall(project, "encrypt-data", encryptBody(project))).status).toBe(200);
    expect((await restCall(project, "encrypt-data", encryptBody(project))).status).toBe(429);
  });

  it("records each refusal in the audit trail, like any other refused request", async () => {
    const refused = await restCall(project, "encrypt-data", encryptBody(project));
    expect(refused.status).toBe(429);
    const requestId = refused.headers.get("x-request-id");
    let record: Record<string, unknown> | undefined;
    for (let attempt = 0; attempt < 20 && record === undefined; attempt++) {
      await sleep(50);
      const { records } = await exportAudit(kmsd.config.dataDir);
      record = records.find((candidate) => candidate.request_id === requestId) as
        | Record<string, unknown>
        | undefined;
    }
    expect(record).toMatchObject({
      protocol: "rest",
      project_id: project,
      operation: "EncryptData",
      key_id: keys[project],
      outcome: "APIGW.0308",
    });
    expect(record?.principal).not.toBe("");
  });
});

describe("gRPC (@grpc/grpc-js)", () => {
  let client: KmsGrpcClient;
  const project = P.grpc;

  beforeAll(() => {
    client = createKmsGrpcClient(kmsd.port);
  });
  afterAll(() => client.close());

  it("passes the burst, then fails ResourceExhausted with ErrorInfo APIGW.0308", async () => {
    const metadata = new grpc.Metadata();
    metadata.set("x-auth-token", tokens[project] ?? "");
    const encrypt = () =>
      client.call("EncryptData", { project_id: project, ...encryptBody(project) }, metadata);
    for (let i = 0; i < BURST; i++) await encrypt();
    const error = (await encrypt().catch((reason: unknown) => reason)) as GrpcCallError;
    expect(error.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(decodeStatusDetails(error)).toMatchObject({
      reason: "APIGW.0308",
      domain: "kmsd",
      code: grpc.status.RESOURCE_EXHAUSTED,
    });
    expect(error.metadata.get("retry-after")).toEqual(["1"]);
    // Not limited: describe and list.
    for (let i = 0; i < 2 * BURST; i++) {
      await client.call("ListKeys", { project_id: project }, metadata);
      await client.call("DescribeKey", { project_id: project, key_id: keys[project] }, metadata);
    }
    await sleep(600);
    await encrypt();
  });
});

/** The ErrorInfo reason of a ConnectError. */
function reasonOf(error: unknown): string | undefined {
  expect(error).toBeInstanceOf(ConnectError);
  return (error as ConnectError).findDetails(ErrorInfoSchema)[0]?.reason;
}

describe.each([
  {
    name: "Connect JSON (kmsd's fast path)",
    project: P.connect,
    transport: () => createConnectTransport({ baseUrl: kmsd.url, httpVersion: "1.1" }),
  },
  {
    name: "gRPC-Web (connect-node's handlers)",
    project: P.web,
    transport: () => createGrpcWebTransport({ baseUrl: kmsd.url, httpVersion: "1.1" }),
  },
])("$name", ({ project, transport }) => {
  it("passes the burst, then fails ResourceExhausted with ErrorInfo APIGW.0308", async () => {
    const client = createClient(KmsService, transport());
    const headers = { "x-auth-token": tokens[project] ?? "" };
    const encrypt = () =>
      client.encryptData(
        { projectId: project, keyId: keys[project] ?? "", plainText: "12345678" },
        { headers },
      );
    for (let i = 0; i < BURST; i++) await encrypt();
    const error = await encrypt().catch((reason: unknown) => reason);
    expect((error as ConnectError).code).toBe(Code.ResourceExhausted);
    expect(reasonOf(error)).toBe("APIGW.0308");
    expect((error as ConnectError).metadata.get("retry-after")).toBe("1");
    for (let i = 0; i < 2 * BURST; i++) await client.listKeys({ projectId: project }, { headers });
    await sleep(600);
    await encrypt();
  });
});
