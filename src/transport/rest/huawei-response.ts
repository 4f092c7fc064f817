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

export function writeHuaweiError(
  response: NodeResponse,
  error: ConnectError,
  requestId: string,
  headers: Record<string, string | string[]> = {},
): void {
  const { status, body } = huaweiErrorBody(error, requestId);
  const all: Record<string, string | string[]> = { ...headers };
  error.metadata.forEach((value, name) => {
    all[name] = value;
  });
  writeJson(response, status, body, all);
}
