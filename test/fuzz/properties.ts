import http from "node:http";
import http2 from "node:http2";
import { brotliDecompressSync, gunzipSync, inflateSync } from "node:zlib";
import { fromBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import {
  type FuzzContext,
  type FuzzRequest,
  type Protocol,
  requestArbitrary,
  unaryMethod,
} from "./requests.js";

/**
 * The fuzzing properties, shared by the CI test (test/hardening/fuzz.test.ts)
 * and `npm run fuzz` (test/fuzz/run.ts): whatever a client sends, kmsd
 * answers 2xx or 4xx (gRPC: a status other than the server-error ones) in
 * the documented shape, and stays up.
 */

/** An answer as received. */
export interface Answer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
  readonly trailers: Readonly<Record<string, string | string[] | undefined>>;
}

/** The body limit the target runs with (kmsd's default): a reset past it is no failure. */
const MAX_BODY_BYTES = 64 * 1024;

/**
 * How long an answer may take: longer than kmsd's slow-client timeout
 * (10 s) and request deadline (30 s), after which kmsd must have answered
 * or cut the request off. A request still unanswered then is a failure.
 */
export const ANSWER_TIMEOUT_MS = 35_000;

/** Sends HTTP/1.1 requests over one keep-alive connection. */
export class Http1Sender {
  readonly #agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  constructor(private readonly url: string) {}

  send(request: FuzzRequest): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const server = new URL(this.url);
      const outgoing = http.request(
        {
          // The path as given: a URL would resolve "." and ".." segments first.
          host: server.hostname,
          port: server.port,
          path: request.path,
          method: request.method,
          // node frames a GET, DELETE or OPTIONS body with neither length nor
          // chunking unless told: the server would read it as the next request.
          headers: { ...request.headers, "content-length": String(request.body.length) },
          agent: this.#agent,
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on("data", (chunk: Buffer) => chunks.push(chunk));
          response.on("error", reject);
          response.on("end", () =>
            resolve({
              status: response.statusCode ?? 0,
              headers: response.headers,
              body: Buffer.concat(chunks),
              trailers: response.trailers,
            }),
          );
        },
      );
      outgoing.setTimeout(ANSWER_TIMEOUT_MS, () =>
        outgoing.destroy(new Error(`no answer in ${ANSWER_TIMEOUT_MS} ms`)),
      );
      outgoing.on("error", reject);
      outgoing.end(request.body);
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}

/** Sends HTTP/2 requests (gRPC) over one h2c connection, reconnecting if the server closes it. */
export class Http2Sender {
  #session: http2.ClientHttp2Session | undefined;
  constructor(private readonly url: string) {}

  #connect(): http2.ClientHttp2Session {
    if (this.#session === undefined || this.#session.closed || this.#session.destroyed) {
      const session = http2.connect(this.url);
      session.on("error", () => {});
      this.#session = session;
    }
    return this.#session;
  }

  send(request: FuzzRequest): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const stream = this.#connect().request({
        ":method": request.method,
        ":path": request.path,
        te: "trailers",
        ...request.headers,
      });
      let status = 0;
      let headers: http2.IncomingHttpHeaders = {};
      let trailers: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      stream.on("response", (received) => {
        headers = received;
        status = Number(received[":status"] ?? 0);
      });
      stream.on("trailers", (received) => {
        trailers = received;
      });
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      const done = () => resolve({ status, headers, body: Buffer.concat(chunks), trailers });
      stream.on("end", done);
      stream.on("error", (error) => {
        // An answer came before the reset (the body limit resets a stream
        // with NO_ERROR once answered): judge the answer.
        if (status !== 0) done();
        else reject(error);
      });
      stream.setTimeout(ANSWER_TIMEOUT_MS, () =>
        stream.destroy(new Error(`no answer in ${ANSWER_TIMEOUT_MS} ms`)),
      );
      stream.end(request.body);
    });
  }

  close(): void {
    this.#session?.destroy();
  }
}

const HUAWEI_CODE = /^(KMS|APIGW)\.\d{4}$/;

function header(answer: Answer, name: string): string | undefined {
  const value = answer.headers[name] ?? answer.trailers[name] ?? grpcWebTrailers(answer.body)[name];
  return Array.isArray(value) ? value[0] : value;
}

/** gRPC-Web's trailers: the body's envelope flagged 0x80, as "name: value" lines. */
function grpcWebTrailers(body: Buffer): Record<string, string> {
  const trailers: Record<string, string> = {};
  for (let at = 0; at + 5 <= body.length; ) {
    const flags = body[at] ?? 0;
    const length = body.readUInt32BE(at + 1);
    const payload = body.subarray(at + 5, at + 5 + length);
    if ((flags & 0x80) !== 0) {
      for (const line of payload.toString("latin1").split("\r\n")) {
        const colon = line.indexOf(":");
        if (colon > 0)
          trailers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
    }
    at += 5 + length;
  }
  return trailers;
}

/** The message of a gRPC answer, for the report. */
function grpcMessage(answer: Answer): string {
  const raw = header(answer, "grpc-message") ?? "";
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Huawei's nested {"error":{"error_code","error_msg"}} or flat gateway body. */
function huaweiErrorProblem(json: unknown): string | undefined {
  if (!isObject(json)) return "the error body is not a JSON object";
  const fields = isObject(json.error) ? json.error : json;
  if (typeof fields.error_code !== "string" || !HUAWEI_CODE.test(fields.error_code)) {
    return "the error body has no Huawei error_code";
  }
  if (typeof fields.error_msg !== "string") return "the error body has no error_msg";
  if (!isObject(json.error) && typeof json.request_id !== "string") {
    return "a flat error body has no request_id";
  }
  return undefined;
}

/** Connect's {"code","message"?,"details"?} error body. */
function connectErrorProblem(json: unknown): string | undefined {
  if (!isObject(json) || typeof json.code !== "string" || !/^[a-z_]+$/.test(json.code)) {
    return "the error body is not Connect's {code, message}";
  }
  if (json.message !== undefined && typeof json.message !== "string")
    return "message is not a string";
  if (json.details !== undefined && !Array.isArray(json.details)) return "details is not an array";
  return undefined;
}

/** gRPC codes that mean the server failed: Unknown, Internal, Unavailable, DataLoss. */
const GRPC_SERVER_FAILURES = new Set([2, 13, 14, 15]);
const GRPC_DEADLINE_EXCEEDED = 4;

// /package.Service/Method: what kmsd serves as gRPC or Connect (http-handler.ts); every other path is REST.
const RPC_PATH = /^\/[A-Za-z_][\w.]*\/[A-Za-z_]\w*(\?|$)/;

/** The answer's documented shape, from where the request went and its content type. */
function expectedShape(request: FuzzRequest): "huawei" | "connect" | "grpc" | "unsupported" {
  if (!RPC_PATH.test(request.path)) return "huawei";
  const type = (request.headers["content-type"] ?? "").split(";", 1)[0]?.trim().toLowerCase() ?? "";
  if (type.startsWith("application/grpc")) return "grpc";
  if (type === "application/json" || type === "application/proto") return "connect";
  return "unsupported";
}

/** Why an answer breaks the property; undefined when it keeps it. */
export function answerProblem(request: FuzzRequest, answer: Answer): string | undefined {
  const shape = expectedShape(request);
  if (shape === "grpc" && answer.status === 200) return grpcProblem(request, answer);
  const json = parseJson(answer.body);
  if (answer.status >= 500 || answer.status < 200) {
    // Connect answers a deadline the client set itself with 504 (deadline_exceeded).
    const ownDeadline =
      shape === "connect" &&
      request.ownDeadline &&
      answer.status === 504 &&
      isObject(json) &&
      json.code === "deadline_exceeded";
    if (!ownDeadline) return `status ${answer.status}`;
  }
  if (answer.status < 400) {
    if (shape === "huawei" && !isObject(json)) return "a success that is not a JSON object";
    return undefined;
  }
  // Only POST reaches an RPC: connect-node refuses other methods (405) itself, without a body.
  if (request.method === "HEAD" || (shape !== "huawei" && request.method !== "POST"))
    return undefined;
  switch (shape) {
    case "huawei":
      return huaweiErrorProblem(json);
    case "connect":
      return connectErrorProblem(json);
    default:
      // gRPC's HTTP-level refusals and Connect's 415 carry no body of their own.
      return undefined;
  }
}

/** The message of a successful gRPC answer, decompressed if the server compressed it. */
function grpcMessageBytes(answer: Answer): Uint8Array | undefined {
  if (answer.body.length < 5) return undefined;
  const payload = answer.body.subarray(5, 5 + answer.body.readUInt32BE(1));
  if ((answer.body[0] ?? 0) === 0) return payload;
  switch (header(answer, "grpc-encoding")) {
    case "gzip":
      return gunzipSync(payload);
    case "br":
      return brotliDecompressSync(payload);
    case "deflate":
      return inflateSync(payload);
    default:
      return undefined;
  }
}

function grpcProblem(request: FuzzRequest, answer: Answer): string | undefined {
  const raw = header(answer, "grpc-status");
  if (raw === undefined || !/^\d+$/.test(raw) || Number(raw) > 16) return `grpc-status ${raw}`;
  const code = Number(raw);
  if (GRPC_SERVER_FAILURES.has(code)) return `grpc-status ${code} (${grpcMessage(answer)})`;
  if (code === GRPC_DEADLINE_EXCEEDED && !request.ownDeadline)
    return "DeadlineExceeded without a client deadline";
  if (code === 0) {
    const method = request.rpc === undefined ? undefined : unaryMethod(request.rpc);
    const message = grpcMessageBytes(answer);
    if (method === undefined || message === undefined) return "a success without a message";
    try {
      fromBinary(method.output, message);
    } catch {
      return "a success whose message does not decode";
    }
    return undefined;
  }
  const details = header(answer, "grpc-status-details-bin");
  if (details !== undefined) {
    try {
      const status = fromBinary(StatusSchema, Buffer.from(details, "base64"));
      if (status.code !== code) return "grpc-status-details-bin disagrees with grpc-status";
    } catch {
      return "grpc-status-details-bin does not decode";
    }
  }
  return undefined;
}

/** Sends one request and checks its answer; throws (with the reason) when the property fails. */
export async function checkRequest(
  send: (request: FuzzRequest) => Promise<Answer>,
  request: FuzzRequest,
): Promise<void> {
  let answer: Answer;
  try {
    answer = await send(request);
  } catch (error) {
    // Refusing to read a body over the limit may reset the connection under the client.
    if (request.body.length > MAX_BODY_BYTES) return;
    throw new Error(`no answer: ${(error as Error).message}`);
  }
  const problem = answerProblem(request, answer);
  if (problem !== undefined) {
    throw new Error(
      `${problem}; answered ${answer.status} ${answer.body.toString("utf8").slice(0, 300)}`,
    );
  }
}

export interface FuzzFailure {
  readonly protocol: Protocol;
  readonly seed: number;
  /** fast-check's path to the failing case: fc.assert(..., { seed, path }) replays it. */
  readonly path: string | undefined;
  readonly error: string;
  /** The (shrunk) failing request. */
  readonly counterexample: string;
}

export interface FuzzReport {
  readonly runs: Record<Protocol, number>;
  readonly failures: FuzzFailure[];
}

export interface FuzzOptions {
  readonly url: string;
  readonly context: FuzzContext;
  readonly protocols: readonly Protocol[];
  /** Cases per protocol. */
  readonly runsPerProtocol: number;
  /** Cases per fast-check run: a failure ends only its own batch. */
  readonly batchSize?: number;
  /** Batches in flight per protocol at once. */
  readonly concurrency?: number;
  /** The first seed; batch i uses seed + i. */
  readonly seed?: number;
  /** Called after each batch (progress, liveness checks); a thrown error stops the run. */
  readonly afterBatch?: (report: FuzzReport) => Promise<void> | void;
}

/**
 * Runs the property over each protocol in batches (each its own seed, so a
 * failure stops one batch and is reported with the seed and path that
 * replay it) and returns how many cases ran and what failed.
 */
export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const batchSize = options.batchSize ?? 500;
  const concurrency = options.concurrency ?? 1;
  const firstSeed = options.seed ?? Date.now() % 2 ** 31;
  const report: FuzzReport = {
    runs: { rest: 0, connect: 0, grpc: 0 },
    failures: [],
  };
  const lanes = options.protocols.flatMap((protocol) =>
    Array.from({ length: concurrency }, (_, lane) => ({ protocol, lane })),
  );
  let nextBatch = 0;
  await Promise.all(
    lanes.map(async ({ protocol, lane }) => {
      const sender =
        protocol === "grpc" ? new Http2Sender(options.url) : new Http1Sender(options.url);
      const send = (request: FuzzRequest) => sender.send(request);
      const arbitrary = requestArbitrary[protocol](options.context);
      try {
        // The protocol's cases are split between its lanes.
        const share = Math.ceil(options.runsPerProtocol / concurrency);
        let done = 0;
        const target = Math.min(share, options.runsPerProtocol - share * lane);
        while (done < target) {
          const numRuns = Math.min(batchSize, target - done);
          const seed = firstSeed + nextBatch++;
          const outcome = await fc
            .check(
              fc.asyncProperty(arbitrary, (request) => checkRequest(send, request)),
              // A case that hangs costs ANSWER_TIMEOUT_MS per shrinking step: bound the batch.
              { numRuns, seed, interruptAfterTimeLimit: 10 * ANSWER_TIMEOUT_MS },
            )
            .catch((error: unknown) => (error instanceof Error ? error : new Error(String(error))));
          done += numRuns;
          if (outcome instanceof Error) {
            // The fuzzer's own failure (generating or reporting a case): the batch is lost, not the run.
            report.failures.push({
              protocol,
              seed,
              path: undefined,
              error: `the fuzzer failed: ${outcome.message}`,
              counterexample: "",
            });
          } else {
            report.runs[protocol] += outcome.numRuns;
            if (outcome.failed) {
              report.failures.push({
                protocol,
                seed: outcome.seed,
                path: outcome.counterexamplePath ?? undefined,
                error:
                  outcome.errorInstance instanceof Error
                    ? outcome.errorInstance.message
                    : String(outcome.errorInstance),
                counterexample: fc.stringify(outcome.counterexample).slice(0, 2000),
              });
            }
          }
          await options.afterBatch?.(report);
        }
      } finally {
        sender.close();
      }
    }),
  );
  return report;
}
