import type { OutgoingHttpHeaders } from "node:http";
import type { NodeResponse } from "./rest/huawei-response.js";

/**
 * gRPC's own percent-encoding of grpc-message: only "%" and bytes outside
 * printable ASCII are escaped. connect-es escapes everything
 * encodeURIComponent would (":", ",", "/"...), and grpc-js decodes with
 * decodeURI, which leaves those escapes in the message it shows.
 */
export function encodeGrpcMessage(message: string): string {
  let out = "";
  for (const byte of Buffer.from(message, "utf8")) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

function reencode(
  headers: OutgoingHttpHeaders | undefined,
  onStatus: (status: string) => void,
): void {
  const status = headers?.["grpc-status"];
  if (typeof status === "string") onStatus(status);
  const value = headers?.["grpc-message"];
  if (headers === undefined || typeof value !== "string") return;
  let message: string;
  try {
    message = decodeURIComponent(value);
  } catch {
    return;
  }
  headers["grpc-message"] = encodeGrpcMessage(message);
}

/**
 * Makes a gRPC response carry grpc-message in gRPC's own encoding, and
 * tells `onStatus` the grpc-status it answers.
 */
export function useGrpcMessageEncoding(
  response: NodeResponse,
  onStatus: (status: string) => void,
): void {
  const writeHead = response.writeHead.bind(response) as (
    status: number,
    headers?: OutgoingHttpHeaders,
  ) => unknown;
  const addTrailers = response.addTrailers.bind(response) as (headers: OutgoingHttpHeaders) => void;
  Object.assign(response, {
    writeHead(status: number, headers?: OutgoingHttpHeaders) {
      reencode(headers, onStatus);
      return writeHead(status, headers);
    },
    addTrailers(headers: OutgoingHttpHeaders) {
      reencode(headers, onStatus);
      addTrailers(headers);
    },
  });
}
