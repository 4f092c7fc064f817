import { performance } from "node:perf_hooks";
import { Code } from "@connectrpc/connect";
import type { CallInfo } from "../transport/call-info.js";
import type { Logger } from "./logger.js";
import { type FinishedRpc, OK_OUTCOME, type RequestObserver } from "./request-observer.js";

/** Codes that say kmsd, not the caller, failed: logged as warnings. */
const SERVER_FAULTS: ReadonlySet<Code> = new Set([
  Code.Internal,
  Code.Unknown,
  Code.DataLoss,
  Code.Unavailable,
]);

/**
 * One JSON line per request: request id, method, protocol, outcome code,
 * latency and project, and nothing from the request itself (no bodies, no
 * headers, no key ids). Successes are logged at debug, so that a busy server
 * at the default level pays nothing for them; failures the caller caused
 * and requests refused before any RPC at info; failures of kmsd's own at
 * warn (the errors interceptor logs their cause at error).
 */
export class AccessLog implements RequestObserver {
  // The level is fixed for the process's life: decided once, not per request.
  private readonly logSuccesses: boolean;

  constructor(private readonly logger: Logger) {
    this.logSuccesses = logger.isLevelEnabled("debug");
  }

  rpcFinished(rpc: FinishedRpc): void {
    if (rpc.outcome === OK_OUTCOME && !this.logSuccesses) return;
    const line = {
      requestId: rpc.call?.requestId,
      method: `${rpc.method.parent.typeName}/${rpc.method.name}`,
      protocol: rpc.call?.protocol,
      code: rpc.outcome,
      latencyUs: rpc.latencyUs,
      projectId: rpc.projectId,
    };
    if (rpc.error === undefined) this.logger.debug(line, "request");
    else if (SERVER_FAULTS.has(rpc.error.code)) this.logger.warn(line, "request failed");
    else this.logger.info(line, "request failed");
  }

  rejected(call: CallInfo, projectId: string, code: string): void {
    // The path without its query string: a query is the caller's free text.
    const path = call.rawTarget.split("?", 1)[0] ?? "";
    this.logger.info(
      {
        requestId: call.requestId,
        method: `${call.httpMethod} ${path}`.slice(0, 300),
        protocol: call.protocol,
        code,
        latencyUs: Math.round((performance.now() - call.receivedAt) * 1000),
        projectId,
      },
      "request refused",
    );
  }
}
