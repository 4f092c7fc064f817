import { create, toBinary, toJson } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectError } from "@connectrpc/connect";
import { StatusSchema } from "../../../gen/google/rpc/status_pb.js";
import { encodeGrpcMessage } from "../grpc-message.js";

/**
 * The wire forms of an error in the two RPC protocols the fast paths speak,
 * as their specifications define them (gRPC: status, message and
 * google.rpc.Status details in trailers; Connect: an HTTP status and a JSON
 * body).
 */

/** gRPC's error trailers (sent as trailers-only headers on a unary error). */
export function grpcErrorTrailers(error: ConnectError): Record<string, string> {
  const trailers: Record<string, string> = {};
  error.metadata.forEach((value, name) => {
    trailers[name] = value;
  });
  trailers["grpc-status"] = String(error.code);
  trailers["grpc-message"] = encodeGrpcMessage(error.rawMessage);
  if (error.details.length > 0) {
    const status = create(StatusSchema, {
      code: error.code,
      message: error.rawMessage,
      details: error.details.map((detail) =>
        "desc" in detail
          ? anyPack(detail.desc, create(detail.desc, detail.value))
          : { typeUrl: `type.googleapis.com/${detail.type}`, value: detail.value },
      ),
    });
    // Binary header values travel as unpadded base64.
    trailers["grpc-status-details-bin"] = Buffer.from(toBinary(StatusSchema, status))
      .toString("base64")
      .replace(/=+$/, "");
  }
  return trailers;
}

/** Connect's HTTP status for each code (connectrpc.com/docs/protocol). */
const connectHttpStatus: Record<Code, number> = {
  [Code.Canceled]: 499,
  [Code.Unknown]: 500,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 504,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
  [Code.FailedPrecondition]: 400,
  [Code.Aborted]: 409,
  [Code.OutOfRange]: 400,
  [Code.Unimplemented]: 501,
  [Code.Internal]: 500,
  [Code.Unavailable]: 503,
  [Code.DataLoss]: 500,
  [Code.Unauthenticated]: 401,
};

/** Connect's code names: snake_case of the enum names. */
export function connectCodeName(code: Code): string {
  return Code[code].replace(
    /[A-Z]/g,
    (letter, offset: number) => (offset > 0 ? "_" : "") + letter.toLowerCase(),
  );
}

/** Connect's unary error: HTTP status, and the JSON body {code, message, details}. */
export function connectErrorBody(error: ConnectError): { status: number; body: string } {
  const details = error.details.map((detail) => {
    if (!("desc" in detail)) {
      return { type: detail.type, value: unpadded(detail.value) };
    }
    const message = create(detail.desc, detail.value);
    return {
      type: detail.desc.typeName,
      value: unpadded(toBinary(detail.desc, message)),
      debug: toJson(detail.desc, message),
    };
  });
  const body: Record<string, unknown> = { code: connectCodeName(error.code) };
  if (error.rawMessage !== "") body.message = error.rawMessage;
  if (details.length > 0) body.details = details;
  return { status: connectHttpStatus[error.code], body: JSON.stringify(body) };
}

function unpadded(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64").replace(/=+$/, "");
}
