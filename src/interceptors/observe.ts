import { performance } from "node:perf_hooks";
import {
  ConnectError,
  type Interceptor,
  type StreamRequest,
  type UnaryRequest,
} from "@connectrpc/connect";
import { OK_OUTCOME, outcomeOf, type RequestObserver } from "../observability/request-observer.js";
import { type CallInfo, callInfoKey } from "../transport/call-info.js";
import { projectIdOf } from "./auth.js";

/**
 * Tells the observers (metrics, access log) how each RPC ended. Outermost in
 * the chain, so it sees the final answer and the whole latency. A streaming
 * call ends when its last response message is sent, not when the handler
 * returns its stream.
 */
export function observeInterceptor(observers: readonly RequestObserver[]): Interceptor {
  const report = (
    request: UnaryRequest | StreamRequest,
    call: CallInfo | undefined,
    startedAt: number,
    error: ConnectError | undefined,
  ) => {
    const rpc = {
      method: request.method,
      call,
      projectId: request.stream ? "" : projectIdOf(request.message),
      outcome: error === undefined ? OK_OUTCOME : outcomeOf(error),
      error,
      latencyUs: Math.round((performance.now() - startedAt) * 1000),
    };
    for (const observer of observers) observer.rpcFinished(rpc);
  };

  return (next) => async (request) => {
    const call = request.contextValues.get(callInfoKey);
    // From the request's arrival when the transport knows it (its body read included).
    const startedAt = call?.receivedAt ?? performance.now();
    let response: Awaited<ReturnType<typeof next>>;
    try {
      response = await next(request);
    } catch (reason) {
      report(request, call, startedAt, ConnectError.from(reason));
      throw reason;
    }
    if (!response.stream) {
      report(request, call, startedAt, undefined);
      return response;
    }
    return {
      ...response,
      message: observed(response.message, (error) => report(request, call, startedAt, error)),
    };
  };
}

async function* observed<T>(
  messages: AsyncIterable<T>,
  done: (error: ConnectError | undefined) => void,
): AsyncIterable<T> {
  let error: ConnectError | undefined;
  try {
    yield* messages;
  } catch (reason) {
    error = ConnectError.from(reason);
    throw reason;
  } finally {
    done(error);
  }
}
