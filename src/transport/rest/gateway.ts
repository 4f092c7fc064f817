import {
  type DescField,
  fromJson,
  getOption,
  type JsonObject,
  toJsonString,
} from "@bufbuild/protobuf";
import { isFieldError } from "@bufbuild/protobuf/reflect";
import { type ConnectError, createContextValues } from "@connectrpc/connect";
import { huawei_error_code } from "../../../gen/kms/v1/rules_pb.js";
import { isHuaweiErrorCode } from "../../errors/huawei-codes.js";
import { huaweiCodeOf, kmsError, toKmsError } from "../../errors/kms-error.js";
import { type CallInfo, callInfoKey } from "../call-info.js";
import type { NodeCall } from "../node-call.js";
import { BodyTooLargeError, type NodeRequest, readBody } from "../read-body.js";
import { maxRequestBytes } from "../request-limits.js";
import type { UnaryInvoker } from "../unary-invoker.js";
import { type NodeResponse, writeHuaweiError, writeJson } from "./huawei-response.js";
import type { RestRoute, RouteTable } from "./route-table.js";

export interface RestGatewayOptions {
  readonly routes: RouteTable;
  readonly invoke: UnaryInvoker;
  /**
   * Largest request body read, in bytes, unless the route's RPC declares a
   * larger (kms.v1.max_request_bytes); larger ones answer KMS.0203.
   */
  readonly maxBodyBytes: number;
  /** Told of every request refused before it reached an RPC (for the audit trail). */
  readonly onRejected: (call: CallInfo, projectId: string, code: string) => void;
}

export type RestHandler = (request: NodeRequest, response: NodeResponse, call: NodeCall) => void;

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
  const { routes, invoke, maxBodyBytes } = options;

  async function handle(
    request: NodeRequest,
    response: NodeResponse,
    call: NodeCall,
    progress: Progress,
  ) {
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
    const body = await readBody(request, maxRequestBytes(route.method, maxBodyBytes));
    call.setBody(body);
    const message = decodeRequest(route, body, pathParams);
    progress.reachedRpc = true;
    const result = await invoke({
      method: route.method,
      message,
      protocolName: "rest",
      requestMethod: call.httpMethod,
      url: call.rawTarget,
      requestHeader: headersOf(request),
      contextValues: createContextValues().set(callInfoKey, call),
    });
    const answer = toJsonString(route.method.output, result.message, {
      useProtoFieldName: true,
      alwaysEmitImplicit: true,
    });
    writeJson(response, 200, answer);
  }

  return (request, response, call) => {
    const progress: Progress = { projectId: "", reachedRpc: false };
    handle(request, response, call, progress).catch((reason: unknown) => {
      const tooLarge = reason instanceof BodyTooLargeError;
      const error: ConnectError = tooLarge
        ? kmsError("KMS.0203", `the request body is larger than ${reason.limit} bytes`)
        : toKmsError(reason);
      if (!progress.reachedRpc) options.onRejected(call, progress.projectId, huaweiCodeOf(error));
      // After refusing an oversized body, close the connection rather than
      // read the rest of it.
      const headers: Record<string, string> = {};
      if (tooLarge && request.httpVersionMajor === 1) headers.connection = "close";
      writeHuaweiError(response, error, call.requestId, headers);
      if (tooLarge) {
        response.once("finish", () => {
          if ("stream" in request) request.stream.close();
          else request.socket.destroySoon();
        });
      }
    });
  };
}

function decodeRequest(route: RestRoute, body: Buffer, pathParams: Record<string, string>) {
  let json: unknown = {};
  if (body.length > 0) {
    try {
      json = JSON.parse(body.toString("utf8"));
    } catch {
      throw kmsError("KMS.0202", "the request body is not valid JSON");
    }
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw kmsError("KMS.0214", "the request body must be a JSON object");
  }
  const fields: JsonObject = route.body === "*" ? { ...(json as JsonObject) } : {};
  for (const [name, value] of Object.entries(pathParams)) {
    const inBody = fields[name];
    if (inBody !== undefined && inBody !== value) {
      throw kmsError("KMS.0201", `${name} in the body differs from the one in the URL`);
    }
    fields[name] = value;
  }
  try {
    return fromJson(route.method.input, fields, { ignoreUnknownFields: true });
  } catch (error) {
    throw jsonFieldError(error);
  }
}

/** A JSON value of the wrong type answers its field's Huawei code. */
function jsonFieldError(error: unknown): ConnectError {
  const cause = error instanceof Error ? error.cause : undefined;
  if (!isFieldError(cause)) return kmsError("KMS.0214", "the request body has an invalid shape");
  const field = cause.field();
  const code = field.kind === "field" ? getOption(field as DescField, huawei_error_code) : "";
  return kmsError(
    isHuaweiErrorCode(code) ? code : "KMS.0214",
    `${field.name} has an invalid value: ${cause.message}`,
  );
}

function headersOf(request: NodeRequest): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(request.headers)) {
    if (name.startsWith(":") || value === undefined) continue;
    if (Array.isArray(value)) for (const item of value) headers.append(name, item);
    else headers.set(name, value);
  }
  return headers;
}
