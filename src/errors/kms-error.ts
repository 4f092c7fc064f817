import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { StoreUnavailableError } from "../keystore/store-unavailable.js";
import { type HuaweiErrorCode, huaweiCodes, isHuaweiErrorCode } from "./huawei-codes.js";

/** The ErrorInfo domain kmsd's errors carry beside their Huawei code. */
export const ERROR_DOMAIN = "kmsd";

// The Huawei code of each error kmsd raised, so that answering it needs no
// decoding of its ErrorInfo detail.
const codeOfError = new WeakMap<ConnectError, HuaweiErrorCode>();

export interface KmsErrorOptions {
  /** A Connect code more precise than the table's (e.g. AlreadyExists). */
  readonly connectCode?: Code;
  readonly cause?: unknown;
  /** Response headers the error carries (e.g. Allow on a 405). */
  readonly metadata?: Readonly<Record<string, string>>;
}

/**
 * The one way kmsd raises an error: a ConnectError with the Connect code
 * mapped from the Huawei code, and a google.rpc.ErrorInfo detail whose
 * reason is the Huawei code. The message must never hold a secret.
 */
export function kmsError(
  code: HuaweiErrorCode,
  message?: string,
  options: KmsErrorOptions = {},
): ConnectError {
  const entry = huaweiCodes[code];
  const error = new ConnectError(
    message ?? entry.meaning,
    options.connectCode ?? entry.connectCode,
    options.metadata,
    [
      {
        desc: ErrorInfoSchema,
        value: create(ErrorInfoSchema, { reason: code, domain: ERROR_DOMAIN }),
      },
    ],
    options.cause,
  );
  codeOfError.set(error, code);
  return error;
}

/** The Huawei code an error answers with; anything unknown is an internal error. */
export function huaweiCodeOf(error: ConnectError): HuaweiErrorCode {
  return findHuaweiCode(error) ?? "KMS.0101";
}

/** The Huawei code kmsd gave an error, if any (protocol-level errors have none). */
export function findHuaweiCode(error: ConnectError): HuaweiErrorCode | undefined {
  const known = codeOfError.get(error);
  if (known !== undefined) return known;
  for (const info of error.findDetails(ErrorInfoSchema)) {
    if (info.domain === ERROR_DOMAIN && isHuaweiErrorCode(info.reason)) return info.reason;
  }
  return undefined;
}

/**
 * Turns anything thrown into an error fit to answer: kmsd's own errors pass
 * unchanged; ConnectErrors raised by the protocol layer get the Huawei code
 * that matches their Connect code; a store that cannot be reached is
 * KMS.0104 (503, Unavailable: trying again later may work); anything else
 * becomes an internal error whose message reveals nothing of the cause.
 */
export function toKmsError(reason: unknown): ConnectError {
  if (reason instanceof StoreUnavailableError) {
    return kmsError("KMS.0104", undefined, { cause: reason });
  }
  if (reason instanceof ConnectError) {
    if (codeOfError.has(reason) || huaweiCodeOf(reason) !== "KMS.0101") return reason;
    const code = huaweiCodeForConnectCode(reason.code);
    if (code === "KMS.0101") return kmsError(code, undefined, { cause: reason });
    return kmsError(code, reason.rawMessage, { connectCode: reason.code, cause: reason });
  }
  return kmsError("KMS.0101", undefined, { cause: reason });
}

// What a protocol-level failure (raised by Connect before kmsd's code ran)
// answers on REST. The Connect code itself is kept for gRPC and Connect.
const huaweiCodeForProtocolError: Partial<Record<Code, HuaweiErrorCode>> = {
  [Code.InvalidArgument]: "KMS.0214",
  [Code.ResourceExhausted]: "KMS.0203",
  [Code.Unimplemented]: "APIGW.0101",
  [Code.Unavailable]: "KMS.0104",
  [Code.DeadlineExceeded]: "KMS.0104",
  [Code.Canceled]: "KMS.0104",
  [Code.Unauthenticated]: "APIGW.0301",
  [Code.PermissionDenied]: "KMS.0307",
};

function huaweiCodeForConnectCode(code: Code): HuaweiErrorCode {
  return huaweiCodeForProtocolError[code] ?? "KMS.0101";
}
