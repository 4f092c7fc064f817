import type { IncomingHttpHeaders } from "node:http";
import { connectTimeoutMs, grpcTimeoutMs } from "../deadline.js";
import type { RpcRoutes } from "./rpc-routes.js";
import type { UnaryRpcRequest } from "./unary-rpc.js";

/**
 * Whether a request is a unary call the fast path serves: gRPC over HTTP/2,
 * or Connect with JSON or binary, uncompressed, POSTed to a known method.
 * Anything else (gRPC-Web, compression, Connect GET, streaming, odd
 * headers) is left to connect-node, which implements every corner of the
 * protocols; the fast path only takes the common case.
 */
export function classifyUnaryRpc(
  routes: RpcRoutes,
  httpMethod: string | undefined,
  target: string | undefined,
  headers: IncomingHttpHeaders,
  isHttp2: boolean,
): UnaryRpcRequest | undefined {
  if (httpMethod !== "POST" || target === undefined) return undefined;
  const method = routes.get(target);
  if (method === undefined) return undefined;
  const header = (name: string) => {
    const value = headers[name];
    return Array.isArray(value) ? undefined : value;
  };
  const contentType = headers["content-type"] ?? "";
  if (contentType === "application/grpc" || contentType === "application/grpc+proto") {
    if (!isHttp2 || !isIdentity(header("grpc-encoding"))) return undefined;
    const timeout = header("grpc-timeout");
    const timeoutMs = timeout === undefined ? undefined : grpcTimeoutMs(timeout);
    if (timeout !== undefined && timeoutMs === undefined) return undefined;
    // As connect-node answers: the explicit codec.
    return {
      method,
      protocol: "grpc",
      codec: "proto",
      contentType: "application/grpc+proto",
      timeoutMs,
    };
  }
  const codec = connectCodec(contentType);
  if (codec === undefined || !isIdentity(header("content-encoding"))) return undefined;
  const version = header("connect-protocol-version");
  if (version !== undefined && version !== "1") return undefined;
  const timeout = header("connect-timeout-ms");
  if (timeout !== undefined && connectTimeoutMs(timeout) === undefined) return undefined;
  return {
    method,
    protocol: "connect",
    codec,
    contentType: codec === "json" ? "application/json" : "application/proto",
    timeoutMs: timeout === undefined ? undefined : Number(timeout),
  };
}

function connectCodec(contentType: string): "json" | "proto" | undefined {
  const base = contentType.split(";", 1)[0]?.trim().toLowerCase();
  if (base === "application/json") return "json";
  if (base === "application/proto") return "proto";
  return undefined;
}

function isIdentity(encoding: string | undefined): boolean {
  return encoding === undefined || encoding === "identity";
}
