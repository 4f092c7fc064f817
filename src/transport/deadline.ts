import type { IncomingHttpHeaders } from "node:http";
import { Code, ConnectError } from "@connectrpc/connect";

const GRPC_TIMEOUT = /^(\d{1,8})([HMSmun])$/;
const GRPC_UNIT_MS: Record<string, number> = {
  H: 3_600_000,
  M: 60_000,
  S: 1000,
  m: 1,
  u: 0.001,
  n: 0.000001,
};
const CONNECT_TIMEOUT = /^\d{1,10}$/;

/** A grpc-timeout header in ms; undefined when it is malformed. */
export function grpcTimeoutMs(value: string): number | undefined {
  const match = GRPC_TIMEOUT.exec(value);
  return match === null ? undefined : Number(match[1]) * (GRPC_UNIT_MS[match[2] ?? ""] ?? 1);
}

/** A connect-timeout-ms header in ms; undefined when it is malformed. */
export function connectTimeoutMs(value: string): number | undefined {
  return CONNECT_TIMEOUT.test(value) ? Number(value) : undefined;
}

/** The longest delay a node timer holds (about 24.8 days); node fires longer ones after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Drops a client deadline too far away for a timer: both protocols allow
 * deadlines of years (grpc-timeout "99999999H", a 10-digit
 * connect-timeout-ms), connect-node arms a timer with them, and node turns
 * a timer that long into one of 1 ms: the call would fail DeadlineExceeded
 * at once. A deadline that far away is no deadline. (kmsd's fast path caps
 * every deadline at --request-timeout-ms and is not affected.)
 */
export function dropUnreachableDeadline(headers: IncomingHttpHeaders): void {
  const grpc = headers["grpc-timeout"];
  if (typeof grpc === "string" && (grpcTimeoutMs(grpc) ?? 0) > MAX_TIMER_MS) {
    delete headers["grpc-timeout"];
  }
  const connect = headers["connect-timeout-ms"];
  if (typeof connect === "string" && (connectTimeoutMs(connect) ?? 0) > MAX_TIMER_MS) {
    delete headers["connect-timeout-ms"];
  }
}

/**
 * The call's result, or DeadlineExceeded once `timeoutMs` has passed. The
 * call itself is not stopped (its signal tells it, see unary-invoker.ts);
 * its late result is dropped.
 */
export function withinDeadline<T>(call: Promise<T>, timeoutMs: number): Promise<T> {
  // One promise and one timer per call: every request passes here, and
  // Promise.race over a second promise cost measurably more.
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new ConnectError("the deadline was exceeded", Code.DeadlineExceeded)),
      timeoutMs,
    );
    call.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (reason: unknown) => {
        clearTimeout(timer);
        reject(reason);
      },
    );
  });
}
