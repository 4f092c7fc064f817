import type { AuditEntry, AuditRecord, StoredAuditRecord } from "../keystore/audit-types.js";

/**
 * An audit entry as the text the store keeps and the seal covers: a JSON
 * object, its fields always in this order. Serialised once, so what is
 * sealed is byte for byte what is stored and what a verifier reads back.
 * Throws a TypeError for a context that is not strings only (stored, it
 * would fail every later read of the trail).
 *
 * Written field by field rather than by JSON.stringify on a copy of the
 * entry: every request leaves a record, and this takes half the time. The
 * text is exactly JSON.stringify's (test/audit/record-text.test.ts checks
 * it on arbitrary entries).
 */
export function auditText(entry: AuditEntry): string {
  let context = "{}";
  for (const key in entry.context) {
    if (typeof entry.context[key] !== "string") {
      throw new TypeError(`audit entry ${entry.requestId}: context must map strings to strings`);
    }
    context = "";
  }
  if (context === "") context = JSON.stringify(entry.context);
  return (
    `{"time":${jsonNumber(entry.time)},"requestId":${jsonString(entry.requestId)}` +
    `,"protocol":${jsonString(entry.protocol)},"projectId":${jsonString(entry.projectId)}` +
    `,"principal":${jsonString(entry.principal)},"operation":${jsonString(entry.operation)}` +
    `,"keyId":${jsonString(entry.keyId)},"sequence":${jsonString(entry.sequence)}` +
    `,"outcome":${jsonString(entry.outcome)},"latencyUs":${jsonNumber(entry.latencyUs)}` +
    `,"context":${context}}`
  );
}

// Characters JSON.stringify writes as escapes: quote, backslash, controls, and surrogates (when lone).
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it looks for.
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

function jsonString(value: string): string {
  return NEEDS_ESCAPE.test(value) ? JSON.stringify(value) : `"${value}"`;
}

function jsonNumber(value: number): string {
  // NaN and the infinities are null in JSON; -0 is 0 either way.
  return Number.isFinite(value) ? String(value) : "null";
}

/**
 * Exactly the entry's fields, in the order its text lists them: what is
 * written, and what a parsed text keeps (nothing else it may hold).
 */
export function entryFields(entry: AuditEntry): AuditEntry {
  return {
    time: entry.time,
    requestId: entry.requestId,
    protocol: entry.protocol,
    projectId: entry.projectId,
    principal: entry.principal,
    operation: entry.operation,
    keyId: entry.keyId,
    sequence: entry.sequence,
    outcome: entry.outcome,
    latencyUs: entry.latencyUs,
    context: entry.context,
  };
}

export class MalformedAuditRecordError extends Error {
  constructor(
    readonly seq: number,
    problem: string,
  ) {
    super(`audit record ${seq} is malformed: ${problem}`);
    this.name = "MalformedAuditRecordError";
  }
}

const STRING_FIELDS = [
  "requestId",
  "protocol",
  "projectId",
  "principal",
  "operation",
  "keyId",
  "sequence",
  "outcome",
] as const;

/**
 * The entry a stored record holds. Throws MalformedAuditRecordError when its
 * text is not an entry, or its time or project columns disagree with it
 * (rows edited behind kmsd's back).
 */
export function parseAuditRecord(stored: StoredAuditRecord): AuditRecord {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stored.text);
  } catch {
    throw new MalformedAuditRecordError(stored.seq, "its text is not JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new MalformedAuditRecordError(stored.seq, "its text is not a JSON object");
  }
  const fields = parsed as Record<string, unknown>;
  for (const name of STRING_FIELDS) {
    if (typeof fields[name] !== "string") {
      throw new MalformedAuditRecordError(stored.seq, `${name} is not a string`);
    }
  }
  for (const name of ["time", "latencyUs"] as const) {
    if (!Number.isSafeInteger(fields[name])) {
      throw new MalformedAuditRecordError(stored.seq, `${name} is not an integer`);
    }
  }
  const context = fields.context;
  if (
    typeof context !== "object" ||
    context === null ||
    Array.isArray(context) ||
    !Object.values(context).every((value) => typeof value === "string")
  ) {
    throw new MalformedAuditRecordError(stored.seq, "context is not a map of strings");
  }
  const entry = fields as unknown as AuditEntry;
  if (entry.time !== stored.time || entry.projectId !== stored.projectId) {
    throw new MalformedAuditRecordError(stored.seq, "its time or project column was changed");
  }
  return {
    ...entryFields(entry),
    seq: stored.seq,
    text: stored.text,
    seal: stored.seal,
    format: stored.format,
  };
}
