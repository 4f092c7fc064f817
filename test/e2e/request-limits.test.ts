/**
 * Batch RPCs declare a larger request limit ((kms.v1.max_request_bytes),
 * 16 MiB) than the server's --max-body-bytes (64 KiB by default). Every
 * protocol honours it for them, and only for them.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KmsService } from "../../gen/kms/v1/kms_pb.js";
import {
  createKmsGrpcClient,
  grpc,
  isGrpcCallError,
  type KmsGrpcClient,
} from "../support/grpc-client.js";
import { type RunningKmsd, removeDir, startKmsd } from "../support/kmsd.js";
import {
  createKeyRest,
  expectError,
  expectOk,
  kms,
  parseRawResponse,
  slowUpload,
  tokenFor,
} from "./rest-helpers.js";

const PROJECT = "limits";
const MAX_BODY = 64 * 1024;
const BATCH_LIMIT = 16 * 1024 * 1024;

let kmsd: RunningKmsd;
let keyId: string;
let token: string;
let grpcClient: KmsGrpcClient;

beforeAll(async () => {
  kmsd = await startKmsd();
  keyId = await createKeyRest(kmsd, PROJECT, "limits");
  token = await tokenFor(kmsd, PROJECT);
  grpcClient = createKmsGrpcClient(kmsd.port);
});

afterAll(async () => {
  grpcClient?.close();
  await kmsd?.stop();
  if (kmsd !== undefined) await removeDir(kmsd.config.dataDir);
});

/** 300 items of 4000 characters: about 1.2 MB, far over 64 KiB. */
function bigItems() {
  return Array.from({ length: 300 }, (_, i) => ({
    reference: String(i),
    key_id: keyId,
    plain_text: String(i % 10).repeat(4000),
  }));
}

describe("request size limits", () => {
  it("REST: batch-encrypt-data reads a body far over --max-body-bytes", async () => {
    const items = bigItems();
    expect(Buffer.byteLength(JSON.stringify({ items }))).toBeGreaterThan(1_000_000);
    const body = expectOk(await kms(kmsd, PROJECT, "batch-encrypt-data", { items })) as {
      items: { reference: string; cipher_text: string }[];
    };
    expect(body.items.map((item) => item.reference)).toEqual(items.map((item) => item.reference));
    const decrypted = expectOk(
      await kms(kmsd, PROJECT, "batch-decrypt-data", {
        items: body.items.map((item) => ({ cipher_text: item.cipher_text })),
      }),
    ) as { items: { plain_text: string }[] };
    expect(decrypted.items.map((item) => item.plain_text)).toEqual(
      items.map((item) => item.plain_text),
    );
  });

  it("REST: every other operation still refuses a body over --max-body-bytes (KMS.0203)", async () => {
    const padding = "p".repeat(MAX_BODY);
    for (const operation of [
      "encrypt-data",
      "decrypt-data",
      "create-datakey",
      "re-encrypt",
      "update-key-description",
    ]) {
      expectError(await kms(kmsd, PROJECT, operation, { key_id: keyId, padding }), 400, "KMS.0203");
    }
  });

  it("REST: a batch body announced over 16 MiB is refused at once (KMS.0203) and the connection closed", async () => {
    const announced = BATCH_LIMIT + 1;
    const exchange = await slowUpload(
      kmsd.port,
      `POST /v1.0/${PROJECT}/kms/batch-encrypt-data HTTP/1.1\r\nHost: kmsd\r\nX-Auth-Token: ${token}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${announced}\r\n\r\n`,
      (sent) => (sent < announced ? Buffer.alloc(16 * 1024, 0x61) : undefined),
      { intervalMs: 5, waitMs: 10_000 },
    );
    expect(exchange.closed).toBe(true);
    expect(exchange.sentAtClose).toBeLessThan(4 * 1024 * 1024);
    const response = parseRawResponse(exchange.response);
    expect(response.status).toBe(400);
    expect(JSON.parse(response.body)).toEqual({
      error: {
        error_code: "KMS.0203",
        error_msg: `the request body is larger than ${BATCH_LIMIT} bytes`,
      },
    });
  });

  // Connect JSON is served by kmsd's unary fast path, gRPC-Web by connect-node: both honour the limits.
  it.each([
    ["Connect JSON", () => createConnectTransport({ baseUrl: kmsd.url, httpVersion: "1.1" })],
    ["gRPC-Web", () => createGrpcWebTransport({ baseUrl: kmsd.url, httpVersion: "1.1" })],
  ])(
    "%s: BatchEncryptData takes a large request; EncryptData still refuses one over 64 KiB",
    async (_name, transport) => {
      const client = createClient(KmsService, transport());
      const headers = { "x-auth-token": token };
      const items = bigItems().map((item) => ({
        keyId: item.key_id,
        plainText: item.plain_text,
        reference: item.reference,
      }));
      const reply = await client.batchEncryptData({ projectId: PROJECT, items }, { headers });
      expect(reply.items).toHaveLength(items.length);
      expect(reply.items.every((item) => item.error === undefined)).toBe(true);

      const error = await client
        .encryptData(
          {
            projectId: PROJECT,
            keyId,
            plainText: "x",
            additionalAuthenticatedData: "a".repeat(MAX_BODY),
          },
          { headers },
        )
        .then(
          () => undefined,
          (reason: unknown) => ConnectError.from(reason),
        );
      expect(error?.code).toBe(Code.ResourceExhausted);
    },
  );

  it("gRPC: BatchEncryptData takes a large message; EncryptData still refuses one over 64 KiB", async () => {
    const metadata = () => {
      const m = new grpc.Metadata();
      m.set("x-auth-token", token);
      return m;
    };
    const items = bigItems();
    const reply = await grpcClient.call(
      "BatchEncryptData",
      { project_id: PROJECT, items },
      metadata(),
    );
    expect((reply.items as unknown[]).length).toBe(items.length);

    const error = await grpcClient
      .call(
        "EncryptData",
        {
          project_id: PROJECT,
          key_id: keyId,
          plain_text: "x",
          additional_authenticated_data: "a".repeat(MAX_BODY),
        },
        metadata(),
      )
      .then(
        () => undefined,
        (reason: unknown) => reason,
      );
    expect(isGrpcCallError(error) ? error.code : error).toBe(grpc.status.RESOURCE_EXHAUSTED);
  });
});
