import type { Interceptor } from "@connectrpc/connect";
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
      if (huaweiCodeOf(error) === "KMS.0101") {
        const cause = error.cause instanceof Error ? error.cause : undefined;
        logger.error(
          {
            requestId: request.contextValues.get(callInfoKey)?.requestId,
            method: request.method.name,
            cause: cause === undefined ? String(error.cause) : `${cause.name}: ${cause.message}`,
          },
          "internal error",
        );
      }
      throw error;
    }
  };
}
