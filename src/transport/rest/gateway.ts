import { create, type JsonObject, type Message } from "@bufbuild/protobuf";
import { createContextValues } from "@connectrpc/connect";
import { huaweiCodeOf, kmsError, toKmsError } from "../../errors/kms-error.js";
import { decodeErrorKey } from "../../interceptors/decode.js";
import { type CallInfo, callInfoKey } from "../call-info.js";
import { withinDeadline } from "../deadline.js";
import { messageFromJson, messageToJson, parseJsonObject } from "../message-codec.js";
import type { NodeCall } from "../node-call.js";
import { bodyReadError } from "../read-body.js";
import { bodyLimits, effectiveTimeoutMs, type RequestLimits } from "../request-limits.js";
import type { Exchange } from "../rpc/exchange.js";
import type { UnaryInvoker } from "../unary-invoker.js";
import { huaweiErrorAnswer, JSON_CONTENT_TYPE } from "./huawei-response.js";
import type { RestRoute, RouteTable } from "./route-table.js";

export interface RestGatewayOptions {
  readonly routes: RouteTable;
  readonly invoke: UnaryInvoker;
  /**
   * The limits requests are held to: bodies larger than the server's or the
   * route RPC's (kms.v1.max_request_bytes) answer KMS.0203.
   */
  readonly limits: RequestLimits;
  /** Told of every request refused before it reached an RPC (for the audit trail). */
  readonly onRejected: (call: CallInfo, projectId: string, code: string) => void;
}

export type RestHandler = (exchange: Exchange, call: NodeCall) => void;

/** How far a request got: what the audit trail needs if it never reaches an RPC. */
interface Progress {
  projectId: string;
  reachedRpc: boolean;
}

/**
 * Huawei's REST API: routes from the proto's google.api.http annotations,
 * Huawei's JSON in and out, Huawei's error bodies, and the same interceptor
 * chain as every other protocol.
 */
export function createRestGateway(options: RestGatewayOptions): RestHandler {
  const { routes, invoke, limits } = options;

  async function handle(exchange: Exchange, call: NodeCall, progress: Progress) {
    const path = call.rawTarget.split("?", 1)[0] ?? "/";
    const match = routes.match(call.httpMethod, path);
    if (match.kind === "not-found") {
      throw kmsError("APIGW.0101", `the API ${call.httpMethod} ${path} does not exist`);
    }
    if (match.kind === "method-not-allowed") {
      const allowed = match.allowed.join(", ");
      throw kmsError("KMS.0215", `${call.httpMethod} is not supported here; use ${allowed}`, {
        metadata: { allow: allowed },
      });
    }
    const { route, pathParams } = match;
    progress.projectId = pathParams.project_id ?? "";
    const body = await exchange.readBody(bodyLimits(route.method, limits));
    call.setBody(body);
    const contextValues = createContextValues().set(callInfoKey, call);
    let message: Message;
    try {
      message = decodeRequest(route, body, pathParams, limits.maxJsonDepth);
    } catch (error) {
      // Answered after authentication (see interceptors/decode.ts).
      contextValues.set(decodeErrorKey, toKmsError(error));
      message = create(route.method.input, { projectId: progress.projectId });
    }
    progress.reachedRpc = true;
    const timeoutMs = effectiveTimeoutMs(undefined, limits);
    const result = await withinDeadline(
      invoke({
        method: route.method,
        message,
        protocolName: "rest",
        requestMethod: call.httpMethod,
        url: call.rawTarget,
        headers: exchange.headers,
        contextValues,
        deadline: Date.now() + timeoutMs,
      }),
      timeoutMs,
    );
    exchange.respond(
      200,
      { "content-type": JSON_CONTENT_TYPE, "x-request-id": call.requestId },
      messageToJson(route.method.output, result.message),
    );
  }

  return (exchange, call) => {
    const progress: Progress = { projectId: "", reachedRpc: false };
    handle(exchange, call, progress).catch((reason: unknown) => {
      const { error, cutOff } = bodyReadError(reason);
      if (!progress.reachedRpc) options.onRejected(call, progress.projectId, huaweiCodeOf(error));
      // After refusing an oversized or too slow body, close the connection
      // (HTTP/1.1) or stream (HTTP/2) rather than read the rest of it.
      if (cutOff) exchange.closeAfterAnswer();
      const answer = huaweiErrorAnswer(error, call.requestId);
      exchange.respond(answer.status, answer.headers, answer.body);
    });
  };
}

function decodeRequest(
  route: RestRoute,
  body: Buffer,
  pathParams: Record<string, string>,
  maxJsonDepth: number,
) {
  const json = body.length === 0 ? {} : parseJsonObject(body.toString("utf8"), maxJsonDepth);
  // The parsed body is this request's own: the path's fields join it in
  // place (a copy cost as much as decoding the rest of the body).
  const fields: JsonObject = route.body === "*" ? json : {};
  for (const name in pathParams) {
    const value = pathParams[name] as string;
    const inBody = fields[name];
    if (inBody !== undefined && inBody !== value) {
      throw kmsError("KMS.0201", `${name} in the body differs from the one in the URL`);
    }
    fields[name] = value;
  }
  return messageFromJson(route.method.input, fields);
}
