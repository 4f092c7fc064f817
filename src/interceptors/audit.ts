import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { Interceptor, UnaryResponse } from "@connectrpc/connect";
import { type AuditKeys, contextValueHash } from "../audit/audit-keys.js";
import type { AuditLog } from "../audit/audit-log.js";
import { latencyUs } from "../audit/latency.js";
import { principalKey, principalName } from "../auth/principal.js";
import { huaweiCodeOf, kmsError, toKmsError } from "../errors/kms-error.js";
import { NO_CONTEXT } from "../keystore/audit-types.js";
import { callInfoKey } from "../transport/call-info.js";

/** The request and response fields the audit trail reads (never plaintext or ciphertext). */
interface AuditedFields {
  readonly projectId?: unknown;
  readonly keyId?: unknown;
  readonly sequence?: unknown;
  readonly encryptionContext?: unknown;
  readonly keyInfo?: { readonly keyId?: unknown };
  /** A batch's items (request) or results (response). */
  readonly items?: unknown;
}

/**
 * Appends one audit entry per RPC, whatever its outcome. Outermost in the
 * chain, so it sees the final answer, including authentication failures.
 */
export function auditInterceptor(log: AuditLog, keys: AuditKeys): Interceptor {
  return (next) => async (request) => {
    // Fail closed: a request the trail could not record is not served. Its
    // refusal is not queued either (the backlog is what is full); the
    // request metrics count it (KMS.0104).
    if (log.saturated) {
      request.contextValues.get(callInfoKey)?.markAudited();
      throw kmsError(
        "KMS.0104",
        "the audit trail cannot be written at the moment, so the request was not served; retry later",
      );
    }
    // Calls that arrive without a transport (the CLI's) start here.
    const started = performance.now();
    const startedMs = Date.now();
    let outcome = "OK";
    let response: UnaryResponse | undefined;
    try {
      const result = await next(request);
      if (!result.stream) response = result;
      return result;
    } catch (reason) {
      const error = toKmsError(reason);
      outcome = huaweiCodeOf(error);
      throw error;
    } finally {
      const call = request.contextValues.get(callInfoKey);
      call?.markAudited();
      const principal = request.contextValues.get(principalKey);
      const fields = (request.stream ? {} : request.message) as AuditedFields;
      const answered = (response?.message ?? {}) as AuditedFields;
      log.record({
        time: call?.receivedAtMs ?? startedMs,
        requestId: call?.requestId ?? randomUUID(),
        protocol: call?.protocol ?? "cli",
        projectId: text(fields.projectId),
        principal: principal === undefined ? "" : principalName(principal),
        operation: operationName(request.method.name, fields.items),
        keyId:
          text(fields.keyId) ||
          text(answered.keyId) ||
          text(answered.keyInfo?.keyId) ||
          batchKeyId(fields.items, answered.items),
        sequence: text(fields.sequence),
        outcome,
        latencyUs: latencyUs(call?.receivedAt ?? started),
        context: hashedContext(keys, fields.encryptionContext),
      });
    }
  };
}

/**
 * Fields are recorded as the caller sent them, also when validation refused
 * them: cut to a bound so that a refused request cannot bloat the trail.
 */
const MAX_FIELD_CHARS = 256;
const MAX_CONTEXT_ENTRIES = 64;

function text(value: unknown): string {
  return typeof value === "string" ? value.slice(0, MAX_FIELD_CHARS) : "";
}

/** A batch is recorded as one entry whose operation counts its items: "BatchEncryptData[250]". */
function operationName(rpc: string, items: unknown): string {
  return Array.isArray(items) ? `${rpc}[${items.length}]` : rpc;
}

/** The one key every item of a batch used, if they all used the same; else "". */
function batchKeyId(...lists: unknown[]): string {
  const ids = new Set<string>();
  for (const list of lists) {
    if (!Array.isArray(list)) continue;
    for (const item of list as AuditedFields[]) {
      const id = text(item.keyId);
      if (id !== "") ids.add(id);
    }
  }
  const [only] = ids;
  return ids.size === 1 && only !== undefined ? only : "";
}

function hashedContext(keys: AuditKeys, context: unknown): Readonly<Record<string, string>> {
  if (typeof context !== "object" || context === null) return NO_CONTEXT;
  const pairs = Object.entries(context);
  if (pairs.length === 0) return NO_CONTEXT;
  // No prototype: a context key "__proto__" is recorded like any other.
  const hashed: Record<string, string> = Object.create(null);
  let entries = 0;
  for (const [key, value] of pairs) {
    if (typeof value !== "string") continue;
    if (++entries > MAX_CONTEXT_ENTRIES) break;
    hashed[key.slice(0, MAX_FIELD_CHARS)] = contextValueHash(keys, value);
  }
  return hashed;
}
