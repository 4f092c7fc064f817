import {
  Code,
  ConnectError,
  type Interceptor,
  type StreamRequest,
  type UnaryRequest,
} from "@connectrpc/connect";
import { huaweiCodeOf, toKmsError } from "../errors/kms-error.js";
import type { Logger } from "../observability/logger.js";
import { callInfoKey } from "../transport/call-info.js";

/**
 * Every failure leaves as a ConnectError carrying its Huawei code. Errors
 * kmsd did not anticipate become KMS.0101 with a message that reveals
 * nothing; their cause is logged (error name and message only: a cause may
 * hold request data, so never the request itself).
 */
export function errorsInterceptor(logger: Logger): Interceptor {
  return (next) => async (request) => {
    try {
      return await next(request);
    } catch (reason) {
      const error = toKmsError(reason);
      if (huaweiCodeOf(error) === "KMS.0101") logInternalError(logger, request, error.cause);
      throw error;
    }
  };
}

/**
 * For the gRPC-defined services (health, reflection), whose errors are
 * gRPC's codes, not Huawei's: ConnectErrors pass unchanged; anything else
 * becomes an Internal error that reveals nothing, its cause logged as above.
 */
export function standardErrorsInterceptor(logger: Logger): Interceptor {
  return (next) => async (request) => {
    try {
      return await next(request);
    } catch (reason) {
      if (reason instanceof ConnectError) throw reason;
      logInternalError(logger, request, reason);
      throw new ConnectError("internal error", Code.Internal);
    }
  };
}

function logInternalError(
  logger: Logger,
  request: UnaryRequest | StreamRequest,
  cause: unknown,
): void {
  logger.error(
    {
      requestId: request.contextValues.get(callInfoKey)?.requestId,
      method: request.method.name,
      cause: cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause),
    },
    "internal error",
  );
}
