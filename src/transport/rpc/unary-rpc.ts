import type { OutgoingHttpHeaders } from "node:http";
import { create, type DescMethodUnary, type Message } from "@bufbuild/protobuf";
import { type ConnectError, createContextValues } from "@connectrpc/connect";
import { huaweiCodeOf, kmsError, toKmsError } from "../../errors/kms-error.js";
import { decodeErrorKey } from "../../interceptors/decode.js";
import { callInfoKey } from "../call-info.js";
import { withinDeadline } from "../deadline.js";
import {
  messageFromBinary,
  messageFromJsonText,
  messageToBinary,
  messageToJson,
} from "../message-codec.js";
import type { NodeCall } from "../node-call.js";
import { bodyReadError } from "../read-body.js";
import { bodyLimits, effectiveTimeoutMs, type RequestLimits } from "../request-limits.js";
import type { UnaryInvoker, UnaryResult } from "../unary-invoker.js";
import { envelopedMessage, singleMessage } from "./envelope.js";
import type { Exchange } from "./exchange.js";
import { connectErrorBody, grpcErrorTrailers } from "./rpc-errors.js";

export type RpcProtocol = "grpc" | "connect";
export type RpcCodec = "proto" | "json";

export interface UnaryRpcOptions {
  readonly invoke: UnaryInvoker;
  /** What requests are held to (an RPC may declare a larger body limit). */
  readonly limits: RequestLimits;
  /** Told of a request refused before it reached an RPC (for the audit trail). */
  readonly onRejected: (call: NodeCall, code: string) => void;
}

/** What the fast path decided from a request's headers. */
export interface UnaryRpcRequest {
  readonly method: DescMethodUnary;
  readonly protocol: RpcProtocol;
  readonly codec: RpcCodec;
  /** The content type to answer with (the request's, for gRPC and Connect alike). */
  readonly contentType: string;
  /** The client's deadline as milliseconds from now, if it set one. */
  readonly timeoutMs: number | undefined;
}

/**
 * Serves one unary call of the gRPC or Connect protocol: reads and decodes
 * the request, runs it through the shared interceptor chain, and answers in
 * the protocol's own shape, errors included. Only the common case comes
 * here (see fast-path.ts); everything else goes to connect-node.
 */
export async function serveUnaryRpc(
  exchange: Exchange,
  request: UnaryRpcRequest,
  call: NodeCall,
  options: UnaryRpcOptions,
): Promise<void> {
  const { method, protocol, codec } = request;
  const baseHeaders: OutgoingHttpHeaders = {
    "content-type": request.contentType,
    "x-request-id": call.requestId,
  };
  const answerError = (error: ConnectError) =>
    answerRpcError(exchange, protocol, baseHeaders, call.requestId, error);

  const { limits } = options;
  let body: Buffer;
  try {
    body = await exchange.readBody(bodyLimits(method, limits));
  } catch (reason) {
    const { error, cutOff } = bodyReadError(reason);
    options.onRejected(call, huaweiCodeOf(error));
    if (cutOff) exchange.closeAfterAnswer();
    answerError(error);
    return;
  }
  const contextValues = createContextValues().set(callInfoKey, call);
  let message: Message;
  try {
    const bytes = protocol === "grpc" ? singleMessage(body) : body;
    if (bytes === undefined) {
      throw kmsError(
        "KMS.0214",
        "a unary gRPC request must carry exactly one uncompressed message",
      );
    }
    call.setBody(bytes);
    message =
      codec === "json"
        ? messageFromJsonText(method.input, bytes.toString("utf8"), limits.maxJsonDepth)
        : messageFromBinary(method.input, bytes);
  } catch (reason) {
    // Answered after authentication (see interceptors/decode.ts).
    contextValues.set(decodeErrorKey, toKmsError(reason));
    message = create(method.input);
  }

  const timeoutMs = effectiveTimeoutMs(request.timeoutMs, limits);
  let result: UnaryResult;
  try {
    result = await withinDeadline(
      options.invoke({
        method,
        message,
        protocolName: protocol,
        requestMethod: call.httpMethod,
        url: call.rawTarget,
        headers: exchange.headers,
        contextValues,
        deadline: Date.now() + timeoutMs,
        client: exchange,
      }),
      timeoutMs,
    );
  } catch (reason) {
    answerError(toKmsError(reason));
    return;
  }

  // Most calls set no headers or trailers of their own: no copies for them.
  const headers =
    result.header === undefined ? baseHeaders : { ...headerObject(result.header), ...baseHeaders };
  if (protocol === "grpc") {
    const trailers =
      result.trailer === undefined ? GRPC_OK : { ...headerObject(result.trailer), ...GRPC_OK };
    exchange.respond(200, headers, envelopedMessage(method.output, result.message), trailers);
  } else {
    const body =
      codec === "json"
        ? messageToJson(method.output, result.message)
        : messageToBinary(method.output, result.message);
    // Connect carries unary trailers as headers prefixed "trailer-".
    result.trailer?.forEach((value, name) => {
      headers[`trailer-${name}`] = value;
    });
    exchange.respond(200, headers, body);
  }
}

const GRPC_OK: OutgoingHttpHeaders = Object.freeze({ "grpc-status": "0" });

/** An error in the call's protocol: gRPC trailers-only, or Connect's JSON error body. */
function answerRpcError(
  exchange: Exchange,
  protocol: RpcProtocol,
  baseHeaders: OutgoingHttpHeaders,
  requestId: string,
  error: ConnectError,
): void {
  if (protocol === "grpc") {
    exchange.respondHeadersOnly(200, { ...baseHeaders, ...grpcErrorTrailers(error) });
    return;
  }
  const { status, body } = connectErrorBody(error);
  exchange.respond(
    status,
    {
      ...headerObject(error.metadata),
      "content-type": "application/json",
      "x-request-id": requestId,
    },
    body,
  );
}

function headerObject(headers: Headers | undefined): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  headers?.forEach((value, name) => {
    out[name] = value;
  });
  return out;
}
