import type { ConnectError, ConnectRouter } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";
import { trailerFlag, trailerParse, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { kmsError } from "../errors/kms-error.js";
import { connectErrorBody, grpcErrorTrailers } from "./rpc/rpc-errors.js";

/**
 * connect-node answers a request message that is not valid protobuf (its
 * binary serialization's "parse binary: ..." error) with Internal: a server
 * error, logged and counted as kmsd's own failure, for what is the client's
 * mistake. Its parsing runs before any interceptor, and it has no option to
 * change that code, so its answer is corrected on the way out: such
 * requests get what kmsd's fast path answers them, InvalidArgument with
 * KMS.0214, in each protocol's shape (gRPC trailers, the gRPC-Web trailer
 * frame, Connect's JSON error).
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

// What connect-es's binary serialization raises (Code.Internal) when fromBinary throws.
const PARSE_BINARY = "parse binary:";
const GRPC_INTERNAL = "13";

function correcting(handler: UniversalHandler): UniversalHandler {
  const invalid = () =>
    kmsError("KMS.0214", `the request is not a valid ${handler.method.input.typeName} message`);
  const corrected = async (
    ...args: Parameters<UniversalHandler>
  ): Promise<UniversalServerResponse> => {
    const response = await handler(...args);
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
    return decodeURIComponent(message).startsWith(PARSE_BINARY);
  } catch {
    return false;
  }
}

function setGrpcError(trailer: Headers, error: ConnectError): void {
  trailer.delete("grpc-status-details-bin");
  for (const [name, value] of Object.entries(grpcErrorTrailers(error))) trailer.set(name, value);
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
        const data = trailerSerialize(trailer);
        const prefix = Buffer.alloc(5);
        prefix[0] = trailerFlag;
        prefix.writeUInt32BE(data.length, 1);
        yield Buffer.concat([bytes.subarray(0, at), prefix, data]);
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
  if (code === "internal" && typeof message === "string" && message.startsWith(PARSE_BINARY)) {
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
