import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { JsonReadOptions, JsonWriteOptions } from "@bufbuild/protobuf";
import { type ConnectRouter, createContextValues, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { type CallInfo, callInfoKey, type Protocol, protocolOfContentType } from "./call-info.js";
import type { RequestHandler } from "./listener.js";
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
}

/** Huawei's JSON: its field names, and every field present (as Huawei sends them). */
export const huaweiJsonOptions: Partial<JsonReadOptions & JsonWriteOptions> = {
  useProtoFieldName: true,
  alwaysEmitImplicit: true,
  ignoreUnknownFields: true,
};

/**
 * The request listener behind the port: gives each request its id, then
 * routes RPC paths (/package.Service/Method) to Connect and the rest to the
 * REST gateway.
 */
export function createHttpHandler(options: HttpHandlerOptions): RequestHandler {
  const calls = new WeakMap<NodeRequest, CallInfo>();
  const startCall = (request: NodeRequest, protocol: Protocol): CallInfo => {
    const call = { requestId: randomUUID(), protocol, receivedAt: performance.now() };
    calls.set(request, call);
    return call;
  };

  const connect = connectNodeAdapter({
    routes: options.routes,
    interceptors: options.interceptors,
    jsonOptions: huaweiJsonOptions,
    readMaxBytes: options.maxBodyBytes,
    contextValues: (request) => createContextValues().set(callInfoKey, calls.get(request)),
    fallback: (request, response) => {
      const call = calls.get(request) ?? startCall(request, "rest");
      // connect-node narrows write()'s callback type; the object is the server's own response.
      options.rest(request, response as NodeResponse, { ...call, protocol: "rest" });
    },
  });

  return (request, response) => {
    const call = startCall(request, protocolOfContentType(request.headers["content-type"]));
    response.setHeader("x-request-id", call.requestId);
    connect(request, response);
  };
}
