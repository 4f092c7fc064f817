import type { Interceptor, StreamRequest, UnaryRequest } from "@connectrpc/connect";

/**
 * An interceptor that only checks a request and then passes it on. Not an
 * async function: every call goes through each interceptor, and an async
 * wrapper costs a promise and a microtask turn per call for nothing. A
 * failed check still reaches the caller as a rejected promise.
 */
export function guardInterceptor(
  check: (request: UnaryRequest | StreamRequest) => void,
): Interceptor {
  return (next) => (request) => {
    try {
      check(request);
    } catch (error) {
      return Promise.reject(error);
    }
    return next(request);
  };
}
