import type { IncomingHttpHeaders, ServerResponse } from "node:http";
import type { DescService } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createContextValues,
  type Interceptor,
} from "@connectrpc/connect";
import { type ConnectNodeAdapterOptions, connectNodeAdapter } from "@connectrpc/connect-node";
import { huaweiCodeOf, toKmsError } from "../errors/kms-error.js";
import { callInfoKey, protocolOfContentType } from "./call-info.js";
import { dropUnreachableDeadline } from "./deadline.js";
import { encodeGrpcMessage, useGrpcMessageEncoding } from "./grpc-message.js";
import type { Http1Request } from "./http1/connection.js";
import type { Http2ServerStream } from "./http2/server-stream.js";
import type { RequestHandler } from "./listener.js";
import { huaweiJsonOptions } from "./message-codec.js";
import { NodeCall } from "./node-call.js";
import { type OpsEndpoint, serveOpsEndpoint } from "./ops-endpoint.js";
import type { NodeRequest } from "./read-body.js";
import type { RequestLimits } from "./request-limits.js";
import type { RestHandler } from "./rest/gateway.js";
import type { NodeResponse } from "./rest/huawei-response.js";
import {
  closeIfAnsweredEarly,
  type Exchange,
  Http1Exchange,
  Http2Exchange,
} from "./rpc/exchange.js";
import { classifyUnaryRpc } from "./rpc/fast-path.js";
import type { RpcRoutes } from "./rpc/rpc-routes.js";
import { serveUnaryRpc, type UnaryRpcOptions } from "./rpc/unary-rpc.js";
import type { UnaryInvoker } from "./unary-invoker.js";
import { answerUndecodableAsInvalid } from "./undecodable-requests.js";

export interface HttpHandlerOptions {
  /** Registers the Connect services (gRPC, gRPC-Web and Connect protocols). */
  readonly routes: (router: ConnectRouter) => void;
  /** The unary RPCs the fast path serves itself (the rest go to connect-node). */
  readonly fastRoutes: RpcRoutes;
  readonly interceptors: Interceptor[];
  /** The interceptor chain without a transport, for the fast path. */
  readonly invoke: UnaryInvoker;
  /** Everything that is not a Connect RPC path: Huawei's REST API. */
  readonly rest: RestHandler;
  /** What requests are held to on the fast path (connect-node takes the body limit). */
  readonly limits: RequestLimits;
  /** Told of each call refused before it reached an RPC (for the audit trail). */
  readonly onRejected: (call: NodeCall, code: string) => void;
  /**
   * Services answered without credentials (health checking, reflection:
   * probes and grpcurl send none), through their own interceptor chain.
   */
  readonly openServices?: OpenServices;
  /** Unauthenticated GET endpoints by exact path, served before the REST gateway. */
  readonly endpoints?: ReadonlyMap<string, OpsEndpoint>;
}

export interface OpenServices {
  readonly services: readonly DescService[];
  readonly routes: (router: ConnectRouter) => void;
  readonly interceptors: Interceptor[];
}

export interface HttpHandler {
  /** node's http and http2-compatibility 'request' listener. */
  readonly request: RequestHandler;
  /** Requests on kmsd's own HTTP/1.1 path: true when taken, false to leave them to node. */
  readonly http1: (request: Http1Request) => boolean;
  /** Streams of kmsd's own HTTP/2 connections: true when taken, false to relay them to node. */
  readonly http2: (stream: Http2ServerStream) => boolean;
}

// /package.Service/Method: the shape of every gRPC and Connect path.
const RPC_PATH = /^\/[A-Za-z_][\w.]*\/[A-Za-z_]\w*(\?|$)/;

/**
 * What is behind the port: each request gets its call info and id, then
 * unary gRPC and Connect calls take the fast path, other RPC traffic
 * (gRPC-Web, compression, streaming...) goes to connect-node (the open
 * services, health and reflection, to an adapter of their own), the
 * operations endpoints answer their GETs, and everything else goes to the
 * REST gateway.
 */
export function createHttpHandler(options: HttpHandlerOptions): HttpHandler {
  const calls = new WeakMap<NodeRequest, NodeCall>();
  const unary: UnaryRpcOptions = {
    invoke: options.invoke,
    limits: options.limits,
    onRejected: options.onRejected,
  };

  type AdapterOptions = Required<ConnectNodeAdapterOptions>;
  const contextValues: AdapterOptions["contextValues"] = (request) => {
    const call = calls.get(request);
    call?.tapBody(request);
    return createContextValues().set(callInfoKey, call);
  };
  const fallback: AdapterOptions["fallback"] = (request, response) => {
    const call = calls.get(request) ?? NodeCall.fromRequest(request, "rest");
    options.onRejected(call, "APIGW.0101");
    // connect-node narrows write()'s callback type; the object is the server's own response.
    answerUnknownRpc(call, response as NodeResponse);
  };
  const connect = connectNodeAdapter({
    routes: answerUndecodableAsInvalid(options.routes),
    interceptors: options.interceptors,
    jsonOptions: huaweiJsonOptions,
    readMaxBytes: options.limits.maxBodyBytes,
    contextValues,
    fallback,
  });
  const open = options.openServices;
  const openServiceNames = new Set(open?.services.map((service) => service.typeName));
  // Standard services speak standard JSON (camelCase), as their other implementations do.
  const connectOpen =
    open === undefined
      ? undefined
      : connectNodeAdapter({
          routes: answerUndecodableAsInvalid(open.routes),
          interceptors: open.interceptors,
          readMaxBytes: options.limits.maxBodyBytes,
          // No body hash: nothing authenticates these calls.
          contextValues: (request) => createContextValues().set(callInfoKey, calls.get(request)),
          fallback,
        });

  /**
   * Serves a request on kmsd's own paths (the RPC fast path, the REST
   * gateway) when it belongs there; false leaves it to node's servers
   * (connect-node, the operations endpoints).
   */
  function serveOwn(
    method: string,
    target: string,
    headers: IncomingHttpHeaders,
    isHttp2: boolean,
    exchange: () => Exchange,
  ): boolean {
    if (!RPC_PATH.test(target)) {
      if (options.endpoints?.has(pathOf(target))) return false;
      options.rest(exchange(), new NodeCall(headers, method, target, "rest"));
      return true;
    }
    const fast = classifyUnaryRpc(options.fastRoutes, method, target, headers, isHttp2);
    if (fast === undefined) return false;
    const call = new NodeCall(headers, method, target, fast.protocol);
    void serveUnaryRpc(exchange(), fast, call, unary);
    return true;
  }

  return {
    request(request, response) {
      const target = request.url ?? "/";
      const exchange = () => exchangeOf(request, response);
      // HTTP/2 streams were offered to kmsd's own paths in stream() already;
      // HTTP/1.1 requests come here once their connection went to node's server.
      const http1 = !("stream" in request);
      if (http1 && serveOwn(request.method ?? "GET", target, request.headers, false, exchange)) {
        return;
      }
      if (!RPC_PATH.test(target)) {
        const call = NodeCall.fromRequest(request, "rest");
        response.setHeader("x-request-id", call.requestId);
        const endpoint = options.endpoints?.get(pathOf(target));
        if (endpoint !== undefined) serveOpsEndpoint(endpoint, request, response, call);
        else options.rest(exchange(), call);
        return;
      }
      const call = NodeCall.fromRequest(
        request,
        protocolOfContentType(request.headers["content-type"]),
      );
      calls.set(request, call);
      response.setHeader("x-request-id", call.requestId);
      if (call.protocol === "grpc") {
        useGrpcMessageEncoding(response, (status) => {
          call.grpcStatus = status;
        });
      }
      // connect-node refuses some requests itself before any interceptor runs
      // (unsupported content type, GET, undecodable messages): record those
      // too. Successes that bypass the audit interceptor (health checks,
      // reflection) are not KMS operations and are not recorded.
      response.once("close", () => {
        const outcome = call.audited ? "OK" : protocolOutcome(response.statusCode, call.grpcStatus);
        if (outcome !== "OK") options.onRejected(call, outcome);
      });
      dropUnreachableDeadline(request.headers);
      if (!("stream" in request)) closeIfAnsweredEarly(request, response as ServerResponse);
      if (connectOpen !== undefined && openServiceNames.has(serviceOf(target))) {
        connectOpen(request, response);
      } else {
        connect(request, response);
      }
    },

    http1(request) {
      return serveOwn(request.method, request.target, request.headers, false, () => request);
    },

    http2(stream) {
      return serveOwn(stream.method, stream.target, stream.headers, true, () => stream);
    },
  };
}

/** A request of node's http or http2-compatibility server as the fast paths' Exchange. */
function exchangeOf(request: NodeRequest, response: NodeResponse): Exchange {
  return "stream" in request
    ? new Http2Exchange(request.stream, request.headers)
    : new Http1Exchange(request, response as ServerResponse);
}

/** The path of a request target, without its query string. */
function pathOf(target: string): string {
  const query = target.indexOf("?");
  return query < 0 ? target : target.slice(0, query);
}

/** The service an RPC path (/package.Service/Method) names. */
function serviceOf(target: string): string {
  return target.slice(1, target.indexOf("/", 1));
}

/**
 * An RPC path this server does not serve, answered in the caller's protocol
 * (Unimplemented) rather than as a REST 404, so that RPC clients report it
 * as such.
 */
function answerUnknownRpc(call: NodeCall, response: NodeResponse): void {
  const path = call.rawTarget.split("?", 1)[0] ?? "";
  const message = `unknown RPC ${path}`;
  if (call.protocol === "connect") {
    const body = JSON.stringify({ code: "unimplemented", message });
    response.writeHead(404, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(body),
    });
    response.end(body);
    return;
  }
  // gRPC and gRPC-Web: a trailers-only response carrying status 12 (UNIMPLEMENTED).
  const headers = {
    "content-type": call.header("content-type") ?? "application/grpc",
    "grpc-status": String(Code.Unimplemented),
    "grpc-message": encodeGrpcMessage(message),
    "x-request-id": call.requestId,
  };
  if ("stream" in response) {
    // One HEADERS frame ending the stream: what gRPC clients read as trailers-only.
    response.stream.respond({ ":status": 200, ...headers }, { endStream: true });
  } else {
    response.writeHead(200, headers);
    response.end();
  }
}

/** The Huawei code of an answer connect-node gave without kmsd's chain. */
function protocolOutcome(httpStatus: number, grpcStatus: string | undefined): string {
  if (httpStatus === 200 && (grpcStatus === undefined || grpcStatus === "0")) return "OK";
  const code = httpStatus === 200 ? Number(grpcStatus) : codeFromHttpStatus(httpStatus);
  return huaweiCodeOf(toKmsError(new ConnectError("", code as Code)));
}

/** The Connect code an HTTP error status stands for (the gRPC HTTP mapping). */
function codeFromHttpStatus(status: number): Code {
  switch (status) {
    case 400:
      return Code.InvalidArgument;
    case 401:
      return Code.Unauthenticated;
    case 403:
      return Code.PermissionDenied;
    case 404:
      return Code.Unimplemented;
    case 405:
    case 415:
      return Code.InvalidArgument;
    case 408:
    case 504:
      return Code.DeadlineExceeded;
    case 413:
    case 429:
      return Code.ResourceExhausted;
    case 503:
      return Code.Unavailable;
    default:
      return Code.Internal;
  }
}
