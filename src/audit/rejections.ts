import type { CallInfo } from "../transport/call-info.js";
import type { AuditLog } from "./audit-log.js";
import { latencyUs } from "./latency.js";

/**
 * Records a request the transport refused before any RPC ran (unknown path,
 * wrong method, unreadable body): every request leaves an audit record.
 */
export function auditRejection(
  log: AuditLog,
  call: CallInfo,
  projectId: string,
  outcome: string,
): void {
  call.markAudited();
  // With the backlog full (the store unreachable), refusals are not queued:
  // a flood of bad requests must not grow it (the request metrics count them).
  if (log.saturated) return;
  const path = call.rawTarget.split("?", 1)[0] ?? "";
  log.record({
    time: call.receivedAtMs,
    requestId: call.requestId,
    protocol: call.protocol,
    projectId,
    principal: "",
    operation: `${call.httpMethod} ${path}`.slice(0, 300),
    keyId: "",
    sequence: "",
    outcome,
    latencyUs: latencyUs(call.receivedAt),
    context: {},
  });
}
