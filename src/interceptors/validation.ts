import type { Interceptor } from "@connectrpc/connect";
import type { RequestValidator } from "../validation/request-validator.js";
import { guardInterceptor } from "./guard.js";

/** Rejects a request that breaks its proto rules before any service code runs. */
export function validationInterceptor(validator: RequestValidator): Interceptor {
  return guardInterceptor((request) => {
    if (request.stream) return;
    const error = validator.check(request.method.input, request.message);
    if (error !== undefined) throw error;
  });
}
