import { gzipSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import { EncryptDataRequestSchema } from "../../gen/kms/v1/kms_pb.js";
import { type Answer, Http1Sender, Http2Sender } from "../fuzz/properties.js";
import { createKey, type RunningKmsd, startKmsd, testToken } from "../support/kmsd.js";

/**
 * What the fuzzer found (test/fuzz), each fixed:
 *
 * - a request message connect-node could not decode (not valid protobuf,
 *   flagged compressed without an encoding, not decompressible), sent where
 *   connect-node decodes it (compressed gRPC, gRPC+JSON, gRPC-Web,
 *   compressed Connect), was answered Internal, a server error, instead of
 *   the InvalidArgument / KMS.0214 kmsd's fast path answers;
 * - a gRPC+JSON request whose JSON parse error quoted the body cut in the
 *   middle of a character was never answered (connect-es threw while
 *   writing grpc-message);
 * - a client deadline longer than a node timer holds (grpc-timeout
 *   "99999999H") on connect-node's path armed a timer node cannot hold
 *   (TimeoutOverflowWarning; node fires such a timer after 1 ms);
 * - after connect-node refused an HTTP/1.1 request over the body limit
 *   (gRPC-Web), the keep-alive connection waited for the unread body: the
 *   client's next request on it hung until the slow-client timeout (408).
 */
const PROJECT = "pundecodable";
const PATH = "/kms.v1.KmsService/EncryptData";
/** Field 1 (project_id) declared 10 bytes long, then the message ends: "premature EOF". */
const TRUNCATED = Buffer.from([0x0a, 0x0a, 0x70, 0x66]);

let kmsd: RunningKmsd;
let token: string;
let keyId: string;

beforeAll(async () => {
  kmsd = await startKmsd();
  token = await testToken(kmsd.config, PROJECT);
  keyId = await createKey(kmsd.config, PROJECT, "regressions");
});
afterAll(() => kmsd.stop());

function envelope(flags: number, payload: Uint8Array): Buffer {
  const prefix = Buffer.alloc(5);
  prefix[0] = flags;
  prefix.writeUInt32BE(payload.length, 1);
  return Buffer.concat([prefix, payload]);
}

function reasonOfStatusDetails(encoded: string | undefined): string | undefined {
  if (encoded === undefined) return undefined;
  const status = fromBinary(StatusSchema, Buffer.from(encoded, "base64"));
  return status.details.map((detail) => anyUnpack(detail, ErrorInfoSchema)?.reason).find(Boolean);
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

describe("an undecodable request message on connect-node's path", () => {
  it("gRPC with grpc-encoding gzip: InvalidArgument with KMS.0214", async () => {
    const sender = new Http2Sender(kmsd.url);
    try {
      const answer: Answer = await sender.send({
        method: "POST",
        path: PATH,
        headers: {
          "content-type": "application/grpc",
          "grpc-encoding": "gzip",
          "x-auth-token": token,
        },
        body: envelope(1, gzipSync(TRUNCATED)),
      });
      const trailer = (name: string) => single(answer.trailers[name] ?? answer.headers[name]);
      expect(trailer("grpc-status")).toBe("3");
      expect(trailer("grpc-message")).toBe(
        "the request is not a valid kms.v1.EncryptDataRequest message",
      );
      expect(reasonOfStatusDetails(trailer("grpc-status-details-bin"))).toBe("KMS.0214");
    } finally {
      sender.close();
    }
  });

  it("gRPC-Web: the trailer frame says InvalidArgument with KMS.0214", async () => {
    const sender = new Http1Sender(kmsd.url);
    try {
      const answer = await sender.send({
        method: "POST",
        path: PATH,
        headers: { "content-type": "application/grpc-web+proto", "x-auth-token": token },
        body: envelope(0, TRUNCATED),
      });
      expect(answer.status).toBe(200);
      const frame = answer.body.subarray(5).toString("latin1");
      expect(answer.body[0]).toBe(0x80);
      expect(frame).toContain("grpc-status: 3\r\n");
      const details = /grpc-status-details-bin: (\S+)/.exec(frame)?.[1];
      expect(reasonOfStatusDetails(details)).toBe("KMS.0214");
    } finally {
      sender.close();
    }
  });

  it("Connect binary, gzip-compressed: 400 invalid_argument with KMS.0214", async () => {
    const sender = new Http1Sender(kmsd.url);
    try {
      const answer = await sender.send({
        method: "POST",
        path: PATH,
        headers: {
          "content-type": "application/proto",
          "content-encoding": "gzip",
          "connect-protocol-version": "1",
          "x-auth-token": token,
        },
        body: gzipSync(TRUNCATED),
      });
      expect(answer.status).toBe(400);
      const body = JSON.parse(answer.body.toString("utf8")) as {
        code: string;
        details: { debug: { reason: string } }[];
      };
      expect(body.code).toBe("invalid_argument");
      expect(body.details[0]?.debug.reason).toBe("KMS.0214");
    } finally {
      sender.close();
    }
  });
});

describe("a client deadline too far away for a timer", () => {
  it.each([
    { name: "gRPC-Web, grpc-timeout 99999999H", header: { "grpc-timeout": "99999999H" } },
    { name: "gRPC-Web, grpc-timeout 9999999S", header: { "grpc-timeout": "9999999S" } },
  ])("$name: no timer overflows, and the call runs to completion", async ({ header }) => {
    const sender = new Http1Sender(kmsd.url);
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.name);
    process.on("warning", onWarning);
    try {
      const message = toBinary(
        EncryptDataRequestSchema,
        create(EncryptDataRequestSchema, { projectId: PROJECT, keyId, plainText: "12345678" }),
      );
      const answer = await sender.send({
        method: "POST",
        path: PATH,
        headers: { "content-type": "application/grpc-web+proto", "x-auth-token": token, ...header },
        body: envelope(0, message),
      });
      expect(answer.status).toBe(200);
      // A message envelope, then the trailers saying OK.
      expect(answer.body[0]).toBe(0);
      expect(answer.body.toString("latin1")).toContain("grpc-status: 0\r\n");
      // Warnings are emitted on the next tick.
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings).not.toContain("TimeoutOverflowWarning");
    } finally {
      process.off("warning", onWarning);
      sender.close();
    }
  });
});

describe("a keep-alive connection after connect-node refused a body over the limit", () => {
  it("is closed after the refusal, so the next request gets a prompt answer", async () => {
    const sender = new Http1Sender(kmsd.url);
    try {
      const huge = envelope(0, Buffer.alloc(200_000, 0x41));
      const refused = await sender.send({
        method: "POST",
        path: PATH,
        headers: { "content-type": "application/grpc-web+proto", "x-auth-token": token },
        body: huge,
      });
      expect(refused.body.toString("latin1")).toContain("grpc-status: 8\r\n");
      expect(refused.headers.connection).toBe("close");
      const started = Date.now();
      const next = await sender.send({
        method: "POST",
        path: `/v1.0/${PROJECT}/kms/list-keys`,
        headers: { "content-type": "application/json", "x-auth-token": token },
        body: Buffer.from("{}"),
      });
      expect(next.status).toBe(200);
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      sender.close();
    }
  });
});

describe("gRPC requests connect-node failed to decode", () => {
  async function grpcAnswer(headers: Record<string, string>, body: Buffer) {
    const sender = new Http2Sender(kmsd.url);
    try {
      const answer = await sender.send({
        method: "POST",
        path: PATH,
        headers: { "x-auth-token": token, ...headers },
        body,
      });
      const trailer = (name: string) => single(answer.trailers[name] ?? answer.headers[name]);
      return {
        status: trailer("grpc-status"),
        reason: reasonOfStatusDetails(trailer("grpc-status-details-bin")),
      };
    } finally {
      sender.close();
    }
  }

  it("flagged compressed without an encoding: InvalidArgument with KMS.0214", async () => {
    const answer = await grpcAnswer(
      { "content-type": "application/grpc+json" },
      envelope(1, Buffer.from("{}")),
    );
    expect(answer).toEqual({ status: "3", reason: "KMS.0214" });
  });

  it("not decompressible: InvalidArgument with KMS.0214", async () => {
    const answer = await grpcAnswer(
      { "content-type": "application/grpc", "grpc-encoding": "br" },
      envelope(1, Buffer.from([0x00])),
    );
    expect(answer).toEqual({ status: "3", reason: "KMS.0214" });
  });

  it("JSON whose parse error cuts a character in two: answered, InvalidArgument", async () => {
    // What the fuzzer sent: protobuf bytes (a string of emoji) as gRPC+JSON.
    const body = Buffer.concat([
      Buffer.from([0x0a, 0x05]),
      Buffer.from("pfuzz"),
      Buffer.from([0x12, 0xa0, 0x01]),
      Buffer.from("😀".repeat(40)),
    ]);
    const answer = await grpcAnswer({ "content-type": "application/grpc+json" }, envelope(0, body));
    expect(answer).toEqual({ status: "3", reason: "KMS.0214" });
  }, 40_000);
});
