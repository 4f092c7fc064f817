import { Code, ConnectError } from "@connectrpc/connect";

/**
 * The call's result, or DeadlineExceeded once `timeoutMs` has passed. The
 * call itself is not stopped (its signal tells it, see unary-invoker.ts);
 * its late result is dropped.
 */
export async function withinDeadline<T>(call: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expiry = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new ConnectError("the deadline was exceeded", Code.DeadlineExceeded)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([call, expiry]);
  } finally {
    clearTimeout(timer);
  }
}
