import type { JsonReadOptions, JsonWriteOptions } from "@bufbuild/protobuf";
import {
  Code,
  type ConnectRouter,
  createContextValues,
  type Interceptor,
} from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { callInfoKey, protocolOfContentType } from "./call-info.js";
import { encodeGrpcMessage, useGrpcMessageEncoding } from "./grpc-message.js";
import type { RequestHandler } from "./listener.js";
import { NodeCall } from "./node-call.js";
import type { NodeRequest } from "./read-body.js";
import type { RestHandler } from "./rest/gateway.js";
import type { NodeResponse } from "./rest/huawei-response.js";

export interface HttpHandlerOptions {
  /** Registers the Connect services (gRPC, gRPC-Web and Connect protocols). */
  readonly routes: (router: ConnectRouter) => void;
  readonly interceptors: Interceptor[];
  /** Everything that is not a Connect RPC path: Huawei's REST API. */
  readonly rest: RestHandler;
  readonly maxBodyBytes: number;
  /** Told of each call to an RPC this server does not have (for the audit trail). */
  readonly onUnknownRpc: (call: NodeCall) => void;
}

/** Huawei's JSON: its field names, and every field present (as Huawei sends them). */
export const huaweiJsonOptions: Partial<JsonReadOptions & JsonWriteOptions> = {
  useProtoFieldName: true,
  alwaysEmitImplicit: true,
  ignoreUnknownFields: true,
};

// /package.Service/Method: the shape of every gRPC and Connect path.
const RPC_PATH = /^\/[A-Za-z_][\w.]*\/[A-Za-z_]\w*(\?|$)/;

/**
 * The request listener behind the port: gives each request its call info
 * and id, then routes RPC paths to Connect and the rest to the REST gateway.
 */
export function createHttpHandler(options: HttpHandlerOptions): RequestHandler {
  const calls = new WeakMap<NodeRequest, NodeCall>();

  const connect = connectNodeAdapter({
    routes: options.routes,
    interceptors: options.interceptors,
    jsonOptions: huaweiJsonOptions,
    readMaxBytes: options.maxBodyBytes,
    contextValues: (request) => {
      const call = calls.get(request);
      call?.tapBody();
      return createContextValues().set(callInfoKey, call);
    },
    fallback: (request, response) => {
      const call = calls.get(request) ?? new NodeCall(request, "rest");
      // connect-node narrows write()'s callback type; the object is the server's own response.
      if (call.protocol === "rest") options.rest(request, response as NodeResponse, call);
      else {
        options.onUnknownRpc(call);
        answerUnknownRpc(call, response as NodeResponse);
      }
    },
  });

  return (request, response) => {
    const isRpc = RPC_PATH.test(request.url ?? "");
    const call = new NodeCall(
      request,
      isRpc ? protocolOfContentType(request.headers["content-type"]) : "rest",
    );
    calls.set(request, call);
    response.setHeader("x-request-id", call.requestId);
    if (call.protocol === "grpc") useGrpcMessageEncoding(response);
    connect(request, response);
  };
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
