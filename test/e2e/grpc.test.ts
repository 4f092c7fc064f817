/**
 * kms.v1.KmsService over gRPC (h2c) with the real @grpc/grpc-js client, as a
 * third party would call kmsd: messages from the .proto via proto-loader,
 * errors read as grpc-js presents them.
 */
import http2 from "node:http2";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createKmsGrpcClient,
  decodeStatusDetails,
  type GrpcCallError,
  grpc,
  isGrpcCallError,
  type KmsGrpcClient,
} from "../support/grpc-client.js";
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
  str,
  UNKNOWN_KEY_ID,
  UUID,
} from "./grpc-cases.js";
import { describeSymmetricCases } from "./symmetric-cases.js";

let kmsd: RunningKmsd;
let client: KmsGrpcClient;
let tokens: ProjectTokens;
let kit: Kit;

/** Request metadata carrying an admin token of the project. */
async function asAdminOf(project: string): Promise<grpc.Metadata> {
  const metadata = new grpc.Metadata();
  metadata.set("x-auth-token", await tokens.for(project));
  return metadata;
}

async function metadataFor(request: KmsRequest, auth?: CallAuth): Promise<grpc.Metadata> {
  const metadata = new grpc.Metadata();
  if (auth === undefined) metadata.set("x-auth-token", await tokens.forRequest(request));
  else if (auth.kind === "x-auth-token") metadata.set("x-auth-token", auth.token);
  else if (auth.kind === "bearer") metadata.set("authorization", `Bearer ${auth.token}`);
  return metadata;
}

/** Resolves to the error a call fails with; fails the test if the call succeeds. */
async function failure(promise: Promise<unknown>): Promise<GrpcCallError> {
  let response: unknown;
  try {
    response = await promise;
  } catch (error) {
    if (isGrpcCallError(error)) return error;
    throw error;
  }
  throw new Error(`expected the call to fail, it answered ${JSON.stringify(response)}`);
}

/**
 * A reply as it was on the wire: without the virtual properties proto-loader
 * adds for proto3 `optional` fields ("_name": "name" when set), and without
 * the nulls it puts in for unset message fields.
 */
function asSent(reply: unknown): KmsReply {
  if (Array.isArray(reply)) return reply.map(asSent) as unknown as KmsReply;
  if (typeof reply !== "object" || reply === null) return reply as KmsReply;
  return Object.fromEntries(
    Object.entries(reply)
      .filter(([name, value]) => !name.startsWith("_") && value !== null)
      .map(([name, value]) => [name, typeof value === "object" ? asSent(value) : value]),
  );
}

function grpcDriver(): KmsDriver {
  return {
    call: async (method, request, auth) =>
      asSent(await client.call(method, request, await metadataFor(request, auth))),
    async fail(method, request, auth) {
      const error = await failure(client.call(method, request, await metadataFor(request, auth)));
      const status = decodeStatusDetails(error);
      // grpc-status and the google.rpc.Status it is repeated in must agree.
      if (status !== undefined) expect(status.code, "google.rpc.Status.code").toBe(error.code);
      return {
        code: error.code,
        reason: status?.reason,
        domain: status?.domain,
        message: error.details,
        fullMessage: error.message,
        ...(status === undefined ? {} : { statusMessage: status.message }),
      };
    },
    fullMessage: (code, message) => `${code} ${grpc.status[code]}: ${message}`,
  };
}

beforeAll(async () => {
  kmsd = await startKmsd();
  client = createKmsGrpcClient(kmsd.port);
  tokens = await ProjectTokens.open(kmsd, "grpc-home");
  kit = new Kit(grpcDriver(), tokens, "grpc");
});

afterAll(async () => {
  client?.close();
  await tokens?.close();
  await kmsd?.stop();
});

describe("kms.v1.KmsService over gRPC (@grpc/grpc-js)", () => {
  describeRpcCases(() => kit);
  describeErrorCases(() => kit);
  describeSymmetricCases(() => kit);

  describe("status details", () => {
    it("an error carries grpc-status-details-bin with the code, the raw message and ErrorInfo", async () => {
      const project = kit.project();
      const error = await failure(
        client.call(
          "EncryptData",
          { project_id: project, key_id: "bad", plain_text: "x" },
          await asAdminOf(project),
        ),
      );
      expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
      const [raw] = error.metadata.get("grpc-status-details-bin");
      expect(raw).toBeInstanceOf(Buffer);
      expect(decodeStatusDetails(error)).toEqual({
        code: Code.InvalidArgument,
        message:
          "key_id: does not match regex pattern `^[0-9a-z]{8}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{12}$`",
        reason: "KMS.0205",
        domain: "kmsd",
      });
    });

    it("grpc-js reads a message with reserved URI characters (: , $ /) as it was written", async () => {
      const project = kit.project();
      const error = await failure(
        client.call(
          "CreateKey",
          { project_id: project, key_alias: "a,b" },
          await asAdminOf(project),
        ),
      );
      const expected = "key_alias: does not match regex pattern `^[a-zA-Z0-9:/_-]{1,255}$`";
      expect(decodeStatusDetails(error)?.message).toBe(expected);
      // connect-es percent-encodes grpc-message with encodeURIComponent; grpc-js
      // decodes it with decodeURI, which leaves %3A, %2C, %24, %2F... in place.
      expect(error.details).not.toMatch(/%[0-9A-F]{2}/);
      expect(error.details).toBe(expected);
      expect(error.message).toBe(`3 INVALID_ARGUMENT: ${expected}`);
    });

    it("a message with spaces and quotes reads as it was written", async () => {
      const project = kit.project();
      await client.call(
        "CreateKey",
        { project_id: project, key_alias: "quoted" },
        await asAdminOf(project),
      );
      const error = await failure(
        client.call(
          "CreateKey",
          { project_id: project, key_alias: "quoted" },
          await asAdminOf(project),
        ),
      );
      expect(error.code).toBe(grpc.status.ALREADY_EXISTS);
      expect(error.details).toBe('key_alias "quoted" is already used in this project');
    });
  });

  describe("metadata", () => {
    it("a response carries an x-request-id header, new for each call", async () => {
      const project = kit.project();
      const keyId = await kit.createKey(project);
      const request = { project_id: project, key_id: keyId };
      const first = await client.callWithMetadata("DescribeKey", request, await asAdminOf(project));
      const second = await client.callWithMetadata(
        "DescribeKey",
        request,
        await asAdminOf(project),
      );
      expect(str(first.response, "key_info.key_id")).toBe(keyId);
      const [firstId] = first.headers.get("x-request-id");
      const [secondId] = second.headers.get("x-request-id");
      expect(firstId).toMatch(UUID);
      expect(secondId).toMatch(UUID);
      expect(secondId).not.toBe(firstId);
      expect(first.headers.get("content-type")).toEqual(["application/grpc+proto"]);
    });

    it("an error carries an x-request-id too", async () => {
      const project = kit.project();
      const error = await failure(
        client.call(
          "DescribeKey",
          { project_id: project, key_id: UNKNOWN_KEY_ID },
          await asAdminOf(project),
        ),
      );
      expect(error.code).toBe(grpc.status.NOT_FOUND);
      const ids = [
        ...(error.responseHeaders?.get("x-request-id") ?? []),
        ...error.metadata.get("x-request-id"),
      ];
      expect(ids).toHaveLength(1);
      expect(ids[0]).toMatch(UUID);
    });

    it("an unauthenticated call carries an x-request-id too", async () => {
      const error = await failure(client.call("ListKeys", { project_id: kit.project() }));
      expect(error.code).toBe(grpc.status.UNAUTHENTICATED);
      const ids = [
        ...(error.responseHeaders?.get("x-request-id") ?? []),
        ...error.metadata.get("x-request-id"),
      ];
      expect(ids).toHaveLength(1);
      expect(ids[0]).toMatch(UUID);
    });

    it("request metadata of the caller's own does not disturb the call", async () => {
      const project = kit.project();
      const keyId = await kit.createKey(project);
      const metadata = await asAdminOf(project);
      metadata.set("x-client-trace", "trace-1");
      metadata.set("x-request-id", "caller-chosen");
      const reply = await client.callWithMetadata(
        "EncryptData",
        { project_id: project, key_id: keyId, plain_text: "with metadata" },
        metadata,
      );
      expect(reply.response.key_id).toBe(keyId);
      // kmsd names each request itself.
      expect(reply.headers.get("x-request-id")[0]).toMatch(UUID);
    });
  });

  describe("deadlines", () => {
    it("a 1 ms deadline answers DEADLINE_EXCEEDED and the server keeps serving", async () => {
      const project = kit.project();
      const keyId = await kit.createKey(project);
      const metadata = await asAdminOf(project);
      const errors = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          failure(
            client.call(
              "EncryptData",
              { project_id: project, key_id: keyId, plain_text: "y".repeat(4096 - i) },
              metadata.clone(),
              { deadline: Date.now() + 1 },
            ),
          ),
        ),
      );
      for (const error of errors) {
        expect(error.code).toBe(grpc.status.DEADLINE_EXCEEDED);
        expect(error.details).toMatch(/^Deadline exceeded/);
      }
      // The same channel and the server are still fine.
      const cipherText = await kit.encrypt(project, keyId, "still here");
      expect(
        await client.call(
          "DecryptData",
          { project_id: project, cipher_text: cipherText },
          metadata.clone(),
        ),
      ).toMatchObject({ plain_text: "still here" });
    });

    it("a request whose grpc-timeout has already run out gets an answer, not a crash", async () => {
      const project = kit.project();
      const session = http2.connect(kmsd.url);
      try {
        // A ListKeysRequest { project_id } in one gRPC frame.
        const message = Buffer.from([0x0a, project.length, ...Buffer.from(project)]);
        const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message]);
        const stream = session.request({
          ":method": "POST",
          ":path": "/kms.v1.KmsService/ListKeys",
          "content-type": "application/grpc",
          te: "trailers",
          "grpc-timeout": "1n",
          "x-auth-token": await tokens.for(project),
        });
        const answer = new Promise<{ status: unknown; grpcStatus: unknown }>((resolve, reject) => {
          let status: unknown;
          let grpcStatus: unknown;
          stream.on("response", (headers) => {
            status = headers[":status"];
            grpcStatus = headers["grpc-status"];
          });
          stream.on("trailers", (trailers) => {
            grpcStatus = trailers["grpc-status"];
          });
          stream.on("error", reject);
          stream.on("close", () => resolve({ status, grpcStatus }));
          stream.resume();
        });
        stream.end(frame);
        const { status, grpcStatus } = await answer;
        expect(status).toBe(200);
        // Answering in time (0) or giving up (4, DEADLINE_EXCEEDED) are both fine.
        expect(["0", "4"]).toContain(grpcStatus);
      } finally {
        session.close();
      }
      expect(
        await client.call("ListKeys", { project_id: project }, await asAdminOf(project)),
      ).toMatchObject({ total: 0 });
    });

    it("a generous deadline does not get in the way", async () => {
      const project = kit.project();
      const keyId = await kit.createKey(project);
      const reply = await client.call(
        "EncryptData",
        { project_id: project, key_id: keyId, plain_text: "in time" },
        await asAdminOf(project),
        { deadline: Date.now() + 10_000 },
      );
      expect(reply.key_id).toBe(keyId);
    });
  });

  describe("unknown methods", () => {
    it("a method KmsService does not have answers UNIMPLEMENTED", async () => {
      const project = kit.project();
      const error = await failure(
        client.callRaw("/kms.v1.KmsService/RotateKey", Buffer.alloc(0), await asAdminOf(project)),
      );
      expect(error.code).toBe(grpc.status.UNIMPLEMENTED);
      // kmsd answered it (not some other layer).
      expect([
        ...(error.responseHeaders?.get("x-request-id") ?? []),
        ...error.metadata.get("x-request-id"),
      ]).toEqual([expect.stringMatching(UUID)]);
    });

    it("a service kmsd does not have answers UNIMPLEMENTED", async () => {
      const project = kit.project();
      const error = await failure(
        client.callRaw("/kms.v2.KmsService/EncryptData", Buffer.alloc(0), await asAdminOf(project)),
      );
      expect(error.code).toBe(grpc.status.UNIMPLEMENTED);
    });

    it("the server keeps serving after unknown methods", async () => {
      const project = kit.project();
      await failure(client.callRaw("/kms.v1.KmsService/Nope", Buffer.from([1, 2, 3])));
      expect(
        await client.call("ListKeys", { project_id: project }, await asAdminOf(project)),
      ).toMatchObject({ keys: [], total: 0 });
    });
  });
});
