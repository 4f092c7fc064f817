import { Code } from "@connectrpc/connect";

/**
 * Every Huawei error code kmsd answers, with the HTTP status REST answers and
 * the Connect code gRPC and Connect answer. This table is the single mapping
 * between the two worlds; docs/errors.md is written from it.
 */
export interface HuaweiCode {
  readonly httpStatus: number;
  readonly connectCode: Code;
  /** What the code means, used when a raise site gives no message. */
  readonly meaning: string;
  /**
   * Gateway errors use Huawei's flat body
   * `{"error_code","error_msg","request_id"}`; service errors nest it in
   * `{"error":{...}}`.
   */
  readonly flatBody?: true;
}

const table = {
  "KMS.0201": {
    httpStatus: 400,
    connectCode: Code.InvalidArgument,
    meaning: "Invalid request URL.",
  },
  "KMS.0202": {
    httpStatus: 400,
    connectCode: Code.InvalidArgument,
    meaning: "The request body is not valid JSON.",
  },
  "KMS.0203": {
    httpStatus: 400,
    connectCode: Code.ResourceExhausted,
    meaning: "The request body is too long.",
  },
  "KMS.0204": {
    httpStatus: 400,
    connectCode: Code.InvalidArgument,
    meaning: "A required parameter is missing.",
  },
  "KMS.0205": { httpStatus: 400, connectCode: Code.InvalidArgument, meaning: "Invalid key ID." },
  "KMS.0206": {
    httpStatus: 400,
    connectCode: Code.InvalidArgument,
    meaning: "Invalid sequence number.",
  },
  "KMS.0207": { httpStatus: 404, connectCode: Code.NotFound, meaning: "The key does not exist." },
  "KMS.0208": {
    httpStatus: 400,
    connectCode: Code.InvalidArgument,
    meaning: "Invalid encryption_context.",
  },
  "KMS.0209": {
    httpStatus: 400,
    connectCode: Code.FailedPrecondition,
    meaning: "The key is disabled.",
  },
  "KMS.0210": {
    httpStatus: 400,
    connectCode: Code.FailedPrecondition,
    meaning: "The key is pending deletion and cannot be used.",
  },
  "KMS.0214": {
    httpStatus: 400,
    connectCode: Code.InvalidArgument,
    meaning: "The request format is invalid.",
  },
  "KMS.0215": {
    httpStatus: 405,
    connectCode: Code.Unimplemented,
    meaning: "The request method is not supported.",
  },
  "KMS.0308": { httpStatus: 400, connectCode: Code.InvalidArgument, meaning: "Invalid parameter." },
  "KMS.0313": {
    httpStatus: 400,
    connectCode: Code.FailedPrecondition,
    meaning: "Key rotation is not enabled for the key.",
  },
  "KMS.2101": {
    httpStatus: 400,
    connectCode: Code.InvalidArgument,
    meaning: "Invalid plain_text.",
  },
  "KMS.2105": {
    httpStatus: 400,
    connectCode: Code.InvalidArgument,
    meaning: "The symmetric key does not support this encryption algorithm.",
  },
  "KMS.2201": {
    httpStatus: 400,
    connectCode: Code.InvalidArgument,
    meaning: "Invalid cipher_text.",
  },
  "KMS.0101": { httpStatus: 500, connectCode: Code.Internal, meaning: "Internal error." },
  "KMS.0102": { httpStatus: 500, connectCode: Code.Internal, meaning: "Storage I/O error." },
  "KMS.0104": {
    httpStatus: 503,
    connectCode: Code.Unavailable,
    meaning: "The service is temporarily unavailable.",
  },
  "KMS.0303": {
    httpStatus: 403,
    connectCode: Code.Unauthenticated,
    meaning: "The X-Auth-Token has expired.",
  },
  "KMS.0307": {
    httpStatus: 403,
    connectCode: Code.PermissionDenied,
    meaning: "The user has no permission to perform this operation.",
  },
  "KMS.0321": {
    httpStatus: 403,
    connectCode: Code.PermissionDenied,
    meaning: "The project in the request does not match the credential's project.",
  },
  "APIGW.0301": {
    httpStatus: 401,
    connectCode: Code.Unauthenticated,
    meaning: "Authentication failed: the credential is missing or invalid.",
    flatBody: true,
  },
  "APIGW.0303": {
    httpStatus: 401,
    connectCode: Code.Unauthenticated,
    meaning: "X-Sdk-Date is more than 15 minutes away from the server's time.",
    flatBody: true,
  },
  "APIGW.0308": {
    httpStatus: 429,
    connectCode: Code.ResourceExhausted,
    meaning: "Throttling threshold reached: the project's rate limit of cryptographic operations.",
    flatBody: true,
  },
  "APIGW.0101": {
    httpStatus: 404,
    connectCode: Code.Unimplemented,
    meaning: "The API does not exist or has not been published.",
    flatBody: true,
  },
} as const satisfies Record<string, HuaweiCode>;

export type HuaweiErrorCode = keyof typeof table;

export const huaweiCodes: Readonly<Record<HuaweiErrorCode, HuaweiCode>> = table;

export function isHuaweiErrorCode(value: string): value is HuaweiErrorCode {
  return Object.hasOwn(table, value);
}
