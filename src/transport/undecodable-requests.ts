import type { ConnectError, ConnectRouter } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";
import { trailerFlag, trailerParse, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { kmsError } from "../errors/kms-error.js";
import { connectErrorBody, grpcErrorTrailers } from "./rpc/rpc-errors.js";

/**
 * connect-node answers a request message it cannot decode (not valid
 * protobuf: "parse binary: ..."; flagged compressed without an encoding;
 * not decompressible) with Internal: a server error, logged and counted as
 * kmsd's own failure, for what is the client's mistake. Its decoding runs
 * before any interceptor, and it has no option to change that code, so its
 * answer is corrected on the way out: such requests get what kmsd's fast
 * path answers them, InvalidArgument with KMS.0214, in each protocol's shape
 * (gRPC trailers, the gRPC-Web trailer frame, Connect's JSON error).
 *
 * And when connect-es cannot write an error at all (it percent-encodes
 * grpc-message with encodeURIComponent, which throws on a lone surrogate,
 * as in a JSON parse error quoting the client's bytes cut mid-character),
 * the request would be left unanswered: it is answered InvalidArgument too.
 */
export function answerUndecodableAsInvalid(
  routes: (router: ConnectRouter) => void,
): (router: ConnectRouter) => void {
  return (router) => {
    const first = router.handlers.length;
    routes(router);
    for (let i = first; i < router.handlers.length; i++) {
      const handler = router.handlers[i];
      if (handler !== undefined) router.handlers[i] = correcting(handler);
    }
  };
}

// What connect-es and connect-node raise (Code.Internal) when a request message cannot be decoded.
const DECODE_FAILURES = [
  "parse binary:",
  "received compressed envelope, but do not know how to decompress",
  "decompression failed",
];

function isDecodeFailure(message: string): boolean {
  return DECODE_FAILURES.some((prefix) => message.startsWith(prefix));
}
const GRPC_INTERNAL = "13";

function correcting(handler: UniversalHandler): UniversalHandler {
  const invalid = () =>
    kmsError("KMS.0214", `the request is not a valid ${handler.method.input.typeName} message`);
  const corrected = async (
    ...args: Parameters<UniversalHandler>
  ): Promise<UniversalServerResponse> => {
    let response: UniversalServerResponse;
    try {
      response = await handler(...args);
    } catch (reason) {
      if (!(reason instanceof URIError)) throw reason;
      return errorResponse(args[0].header.get("content-type") ?? "", invalid());
    }
    const type = response.header?.get("content-type") ?? "";
    if (response.body === undefined) return response;
    if (type.startsWith("application/grpc-web")) {
      return { ...response, body: correctGrpcWebBody(response.body, invalid) };
    }
    if (type.startsWith("application/grpc")) {
      // The trailers are filled in as the body is sent: correct them after it.
      return { ...response, body: thenCorrect(response.body, response.trailer, invalid) };
    }
    if (response.status === 500) return correctConnectError(response, response.body, invalid);
    return response;
  };
  // The router reads the handler's method, service and protocols off it.
  return Object.assign(corrected, handler);
}

function isParseFailure(status: string | null, message: string | null): boolean {
  if (status !== GRPC_INTERNAL || message === null) return false;
  try {
    return isDecodeFailure(decodeURIComponent(message));
  } catch {
    return false;
  }
}

function setGrpcError(trailer: Headers, error: ConnectError): void {
  trailer.delete("grpc-status-details-bin");
  for (const [name, value] of Object.entries(grpcErrorTrailers(error))) trailer.set(name, value);
}

/** An error answer built here, in the protocol of the request's content type. */
function errorResponse(contentType: string, error: ConnectError): UniversalServerResponse {
  if (contentType.startsWith("application/grpc")) {
    const trailer = new Headers(grpcErrorTrailers(error));
    const header = new Headers({ "content-type": contentType });
    if (contentType.startsWith("application/grpc-web")) {
      return { status: 200, header, body: once(trailerFrame(trailer)) };
    }
    return { status: 200, header, body: once(new Uint8Array()), trailer };
  }
  const { status, body } = connectErrorBody(error);
  return {
    status,
    header: new Headers({ "content-type": "application/json" }),
    body: once(Buffer.from(body)),
  };
}

/** gRPC-Web's trailers, as the body's last envelope. */
function trailerFrame(trailer: Headers): Buffer {
  const data = trailerSerialize(trailer);
  const prefix = Buffer.alloc(5);
  prefix[0] = trailerFlag;
  prefix.writeUInt32BE(data.length, 1);
  return Buffer.concat([prefix, data]);
}

async function* thenCorrect(
  body: AsyncIterable<Uint8Array>,
  trailer: Headers | undefined,
  invalid: () => ConnectError,
): AsyncIterable<Uint8Array> {
  yield* body;
  if (
    trailer !== undefined &&
    isParseFailure(trailer.get("grpc-status"), trailer.get("grpc-message"))
  ) {
    setGrpcError(trailer, invalid());
  }
}

async function readAll(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function* correctGrpcWebBody(
  body: AsyncIterable<Uint8Array>,
  invalid: () => ConnectError,
): AsyncIterable<Uint8Array> {
  const bytes = await readAll(body);
  // Unary answers are small: a message envelope (on success) and the trailer envelope.
  for (let at = 0; at + 5 <= bytes.length; ) {
    const flags = bytes[at] ?? 0;
    const end = at + 5 + bytes.readUInt32BE(at + 1);
    if (flags === trailerFlag && end === bytes.length) {
      const trailer = trailerParse(bytes.subarray(at + 5, end));
      if (isParseFailure(trailer.get("grpc-status"), trailer.get("grpc-message"))) {
        setGrpcError(trailer, invalid());
        yield Buffer.concat([bytes.subarray(0, at), trailerFrame(trailer)]);
        return;
      }
    }
    at = end;
  }
  yield bytes;
}

async function correctConnectError(
  response: UniversalServerResponse,
  body: AsyncIterable<Uint8Array>,
  invalid: () => ConnectError,
): Promise<UniversalServerResponse> {
  const bytes = await readAll(body);
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString("utf8"));
  } catch {
    parsed = undefined;
  }
  const { code, message } = (parsed ?? {}) as { code?: unknown; message?: unknown };
  if (code === "internal" && typeof message === "string" && isDecodeFailure(message)) {
    const answer = connectErrorBody(invalid());
    const header = new Headers(response.header);
    header.delete("content-length");
    return { ...response, status: answer.status, header, body: once(Buffer.from(answer.body)) };
  }
  return { ...response, body: once(bytes) };
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}
