import type { Interceptor } from "@connectrpc/connect";
import type { RequestValidator } from "../validation/request-validator.js";

/** Rejects a request that breaks its proto rules before any service code runs. */
export function validationInterceptor(validator: RequestValidator): Interceptor {
  return (next) => async (request) => {
    if (!request.stream) {
      const error = validator.check(request.method.input, request.message);
      if (error !== undefined) throw error;
    }
    return next(request);
  };
}
