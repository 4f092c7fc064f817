import type { ServerResponse } from "node:http";
import type { Http2ServerResponse } from "node:http2";
import type { ConnectError } from "@connectrpc/connect";
import { huaweiCodes } from "../../errors/huawei-codes.js";
import { huaweiCodeOf } from "../../errors/kms-error.js";

export type NodeResponse = ServerResponse | Http2ServerResponse;

export const JSON_CONTENT_TYPE = "application/json;charset=UTF-8";

export function writeJson(
  response: NodeResponse,
  status: number,
  body: string,
  headers: Record<string, string | string[]> = {},
): void {
  response.writeHead(status, {
    ...headers,
    "content-type": JSON_CONTENT_TYPE,
    "content-length": String(Buffer.byteLength(body)),
  });
  response.end(body);
}

/**
 * Huawei's error body and status for an error: nested
 * {"error":{"error_code","error_msg"}} for service errors, flat
 * {"error_code","error_msg","request_id"} for API gateway errors.
 */
export function huaweiErrorBody(
  error: ConnectError,
  requestId: string,
): { status: number; body: string } {
  const code = huaweiCodeOf(error);
  const entry = huaweiCodes[code];
  const message = error.rawMessage;
  const body =
    "flatBody" in entry
      ? { error_code: code, error_msg: message, request_id: requestId }
      : { error: { error_code: code, error_msg: message } };
  return { status: entry.httpStatus, body: JSON.stringify(body) };
}

/** A Huawei error answer: its status, body and headers (the error's metadata among them). */
export function huaweiErrorAnswer(
  error: ConnectError,
  requestId: string,
): { status: number; headers: Record<string, string>; body: string } {
  const { status, body } = huaweiErrorBody(error, requestId);
  const headers: Record<string, string> = {};
  error.metadata.forEach((value, name) => {
    headers[name] = value;
  });
  headers["content-type"] = JSON_CONTENT_TYPE;
  headers["x-request-id"] = requestId;
  return { status, headers, body };
}

export function writeHuaweiError(
  response: NodeResponse,
  error: ConnectError,
  requestId: string,
): void {
  const { status, headers, body } = huaweiErrorAnswer(error, requestId);
  writeJson(response, status, body, headers);
}
