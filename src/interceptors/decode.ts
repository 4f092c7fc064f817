import { type ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";
import { guardInterceptor } from "./guard.js";

/**
 * A request body the transport read but could not decode. The transport
 * runs the chain anyway (with an empty message) and this interceptor raises
 * the error right after authentication: an unauthenticated caller learns
 * nothing about the request format, and the failure is audited like any
 * other.
 */
export const decodeErrorKey = createContextKey<ConnectError | undefined>(undefined, {
  description: "kmsd request decode error",
});

export function decodeErrorInterceptor(): Interceptor {
  return guardInterceptor((request) => {
    const error = request.contextValues.get(decodeErrorKey);
    if (error !== undefined) throw error;
  });
}
