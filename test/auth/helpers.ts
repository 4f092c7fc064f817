/**
 * What the authentication suites share: the CLI, Huawei's error bodies as
 * raw replies, signed gRPC calls made the documented way, connect-es
 * clients that sign or send tokens, and ErrorInfo decoding.
 */
import http from "node:http";
import { type DescMethod, type DescMethodUnary, toBinary, toJsonString } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { expect } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { KmsService } from "../../gen/kms/v1/kms_pb.js";
import type { KmsdConfig } from "../../src/config/settings.js";
import { outcome, spawnKmsd } from "../support/cli.js";
import {
  createKmsGrpcClient,
  decodeStatusDetails,
  type GrpcMessage,
  grpc,
  isGrpcCallError,
  type KmsGrpcClient,
  loadKmsPackage,
  SERVICE_NAME,
} from "../support/grpc-client.js";
import { TEST_ROOT_KEY } from "../support/kmsd.js";
import {
  type RawReply,
  type SignedHeaders,
  signRpc,
  type TestCredential,
} from "../support/signing.js";

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** A well-formed key id no key has. */
export const UNKNOWN_KEY_ID = "0d0466b0-e727-4d9c-b35d-f84bb474a37f";
export const JSON_CONTENT_TYPE = "application/json;charset=UTF-8";
export const MINUTE_MS = 60_000;

// ---------------------------------------------------------------- CLI

/** Runs `node bin/kmsd.js ...args` on the data directory of a running kmsd. */
export function runCli(config: Pick<KmsdConfig, "dataDir">, args: readonly string[]) {
  return outcome(
    spawnKmsd(args, {
      KMSD_DATA_DIR: config.dataDir,
      KMSD_ROOT_KEY: TEST_ROOT_KEY,
      KMSD_LOG_LEVEL: "silent",
    }),
  );
}

/** Runs a CLI command that must succeed; returns the JSON it printed. */
export async function cliJson(
  config: Pick<KmsdConfig, "dataDir">,
  args: readonly string[],
): Promise<unknown> {
  const result = await runCli(config, args);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as unknown;
}

/** Polls `probe` until it returns true; fails after `timeoutMs`. Returns the time it took. */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs = 3000,
): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await probe()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

// ---------------------------------------------------------------- REST replies

/** Asserts Huawei's flat gateway error body, exactly {"error_code","error_msg","request_id"}. */
export function expectFlat(reply: RawReply, status: number, code: string): string {
  expect(reply.requestId).toMatch(UUID);
  expect({ status: reply.status, body: reply.json }, reply.text).toEqual({
    status,
    body: { error_code: code, error_msg: expect.any(String), request_id: reply.requestId },
  });
  expect(reply.headers["content-type"]).toBe(JSON_CONTENT_TYPE);
  return (reply.json as { error_msg: string }).error_msg;
}

/** Asserts Huawei's nested service error body, exactly {"error":{"error_code","error_msg"}}. */
export function expectNested(reply: RawReply, status: number, code: string): string {
  expect({ status: reply.status, body: reply.json }, reply.text).toEqual({
    status,
    body: { error: { error_code: code, error_msg: expect.any(String) } },
  });
  expect(reply.headers["content-type"]).toBe(JSON_CONTENT_TYPE);
  expect(reply.requestId).toMatch(UUID);
  return (reply.json as { error: { error_msg: string } }).error.error_msg;
}

/** Asserts a 200 with Huawei's JSON; returns the body. */
export function expectOk(reply: RawReply): Record<string, unknown> {
  expect(reply.status, reply.text).toBe(200);
  expect(reply.headers["content-type"]).toBe(JSON_CONTENT_TYPE);
  return reply.json as Record<string, unknown>;
}

// ---------------------------------------------------------------- errors over RPC

/** An RPC failure as the tests compare it. */
export interface RpcFailure {
  readonly code: Code;
  /** google.rpc.ErrorInfo.reason: the Huawei code. */
  readonly reason: string | undefined;
  readonly domain: string | undefined;
  readonly message: string;
}

export function expectRpcFailure(failure: RpcFailure, code: Code, reason: string): void {
  expect(
    { code: Code[failure.code], reason: failure.reason, domain: failure.domain },
    failure.message,
  ).toEqual({ code: Code[code], reason, domain: "kmsd" });
}

/** What a connect-es call's error says. */
export function connectFailureOf(reason: unknown): RpcFailure {
  const error = ConnectError.from(reason);
  const [info] = error.findDetails(ErrorInfoSchema);
  return {
    code: error.code,
    reason: info?.reason,
    domain: info?.domain,
    message: error.rawMessage,
  };
}

/** The failure a connect-es call ended with; throws if it succeeded. */
export async function connectFailure(call: Promise<unknown>): Promise<RpcFailure> {
  let response: unknown;
  try {
    response = await call;
  } catch (reason) {
    return connectFailureOf(reason);
  }
  throw new Error(`expected the call to fail, it answered ${JSON.stringify(response)}`);
}

// ---------------------------------------------------------------- gRPC (@grpc/grpc-js)

const kmsPackage = loadKmsPackage();

interface LoadedMethod {
  readonly path: string;
  readonly requestSerialize: (value: GrpcMessage) => Buffer;
  readonly responseDeserialize: (bytes: Buffer) => GrpcMessage;
}

/** A KmsService method as @grpc/proto-loader presents it (any method the proto has). */
export function loadedMethod(name: string): LoadedMethod {
  const service = kmsPackage[SERVICE_NAME] as Record<string, LoadedMethod> | undefined;
  const method = service?.[name];
  if (method === undefined) throw new Error(`${SERVICE_NAME} has no method ${name}`);
  return method;
}

export type GrpcOutcome =
  | { readonly ok: true; readonly response: GrpcMessage }
  | ({ readonly ok: false } & RpcFailure);

/** How a signed gRPC call may be spoiled. */
export interface RpcTamper {
  /** Signs this message instead of the one sent. */
  readonly signMessage?: GrpcMessage;
  /** Metadata set over the signed headers. */
  readonly headers?: Record<string, string>;
  /** Signs with this X-Sdk-Date. */
  readonly date?: string;
}

/** A @grpc/grpc-js client that signs every call with an access key, as documented. */
export class SignedGrpc {
  readonly client: KmsGrpcClient;

  constructor(readonly port: number) {
    this.client = createKmsGrpcClient(port);
  }

  /**
   * Calls `method` the way docs/authentication.md shows: serialise the
   * request, sign its bytes, send the signature as metadata and the bytes
   * with an identity serializer.
   */
  call(
    credential: TestCredential | Record<string, string>,
    name: string,
    request: GrpcMessage,
    tamper: RpcTamper = {},
  ): Promise<GrpcOutcome> {
    const method = loadedMethod(name);
    const bytes = method.requestSerialize(request);
    let headers: Record<string, string>;
    if ("access_key" in credential) {
      const signed = tamper.signMessage ? method.requestSerialize(tamper.signMessage) : bytes;
      headers = signRpc(credential as TestCredential, {
        authority: `127.0.0.1:${this.port}`,
        path: method.path,
        message: signed,
        ...(tamper.date === undefined ? {} : { date: tamper.date }),
      });
    } else {
      headers = credential;
    }
    return this.send(method, bytes, { ...headers, ...tamper.headers });
  }

  /** Sends already serialised bytes with the given metadata. */
  async send(method: LoadedMethod, bytes: Buffer, headers: SignedHeaders): Promise<GrpcOutcome> {
    const metadata = new grpc.Metadata();
    for (const [name, value] of Object.entries(headers)) metadata.set(name, value);
    try {
      const reply = await this.client.callRaw(method.path, bytes, metadata);
      return { ok: true, response: method.responseDeserialize(reply.response) };
    } catch (error) {
      if (!isGrpcCallError(error)) throw error;
      const status = decodeStatusDetails(error);
      return {
        ok: false,
        code: error.code as number as Code,
        reason: status?.reason,
        domain: status?.domain,
        message: error.details,
      };
    }
  }

  close(): void {
    this.client.close();
  }
}

/** The response of a call that must have succeeded. */
export function grpcOk(outcome: GrpcOutcome): GrpcMessage {
  if (!outcome.ok)
    throw new Error(`call failed: ${Code[outcome.code]} ${outcome.reason} ${outcome.message}`);
  return outcome.response;
}

/** The failure of a call that must have failed. */
export function grpcFailure(outcome: GrpcOutcome): RpcFailure {
  if (outcome.ok) throw new Error(`expected a failure, got ${JSON.stringify(outcome.response)}`);
  return outcome;
}

// ---------------------------------------------------------------- connect-es

/**
 * A connect-es interceptor that signs the request message bytes as the
 * transport will send them: the binary encoding (sent as is by Connect
 * binary, inside the envelope by gRPC and gRPC-Web) or the JSON one (Connect
 * JSON; connect-es writes toJsonString's output). "body" spoils it: it signs
 * the message with one more character of plain_text than is sent.
 */
export function signingInterceptor(
  credential: TestCredential,
  authority: string,
  format: "binary" | "json",
  options: { spoil?: "body"; date?: () => string } = {},
): Interceptor {
  return (next) => async (request) => {
    if (request.stream) throw new Error("only unary calls are signed here");
    const method = request.method as DescMethodUnary;
    let message = request.message;
    if (options.spoil === "body") {
      const plainText = String(Reflect.get(message, "plainText"));
      message = { ...message, plainText: `${plainText}!` } as typeof message;
    }
    const bytes =
      format === "binary" ? toBinary(method.input, message) : toJsonString(method.input, message);
    const headers = signRpc(credential, {
      authority,
      path: new URL(request.url).pathname,
      message: bytes,
      ...(options.date === undefined ? {} : { date: options.date() }),
    });
    for (const [name, value] of Object.entries(headers)) request.header.set(name, value);
    return next(request);
  };
}

export interface ConnectTransportCase {
  readonly name: string;
  /** The message encoding the transport sends. */
  readonly format: "binary" | "json";
  readonly create: (
    baseUrl: string,
    interceptors: Interceptor[],
    track: (closer: () => void) => void,
  ) => Transport;
}

function http1Agent(track: (closer: () => void) => void) {
  const agent = new http.Agent({ keepAlive: true });
  track(() => agent.destroy());
  return { httpVersion: "1.1" as const, nodeOptions: { agent } };
}

function http2Session(baseUrl: string, track: (closer: () => void) => void) {
  const sessionManager = new Http2SessionManager(baseUrl);
  track(() => sessionManager.abort());
  return { httpVersion: "2" as const, sessionManager };
}

export const CONNECT_TRANSPORTS: readonly ConnectTransportCase[] = [
  {
    name: "Connect binary over HTTP/1.1",
    format: "binary",
    create: (baseUrl, interceptors, track) =>
      createConnectTransport({
        baseUrl,
        useBinaryFormat: true,
        interceptors,
        ...http1Agent(track),
      }),
  },
  {
    name: "Connect binary over h2c",
    format: "binary",
    create: (baseUrl, interceptors, track) =>
      createConnectTransport({
        baseUrl,
        useBinaryFormat: true,
        interceptors,
        ...http2Session(baseUrl, track),
      }),
  },
  {
    name: "Connect JSON over HTTP/1.1",
    format: "json",
    create: (baseUrl, interceptors, track) =>
      createConnectTransport({
        baseUrl,
        useBinaryFormat: false,
        interceptors,
        ...http1Agent(track),
      }),
  },
  {
    name: "gRPC over h2c (connect-es)",
    format: "binary",
    create: (baseUrl, interceptors, track) =>
      createGrpcTransport({ baseUrl, interceptors, ...http2Session(baseUrl, track) }),
  },
  {
    name: "gRPC-Web over HTTP/1.1 (connect-es)",
    format: "binary",
    create: (baseUrl, interceptors, track) =>
      createGrpcWebTransport({ baseUrl, interceptors, ...http1Agent(track) }),
  },
];

export type KmsClient = ReturnType<typeof createClient<typeof KmsService>>;

/** A connect-es client of KmsService over the transport, with the interceptors given. */
export function connectClient(
  transport: ConnectTransportCase,
  baseUrl: string,
  interceptors: Interceptor[],
  track: (closer: () => void) => void,
): KmsClient {
  return createClient(KmsService, transport.create(baseUrl, interceptors, track));
}

/** A KmsService method by its proto name. */
export function kmsMethod(name: string): DescMethod {
  const method = KmsService.methods.find((candidate) => candidate.name === name);
  if (method === undefined) throw new Error(`KmsService has no method ${name}`);
  return method;
}
