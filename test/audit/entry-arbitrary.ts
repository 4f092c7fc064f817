import fc from "fast-check";
import type { AuditEntry } from "../../src/keystore/audit-types.js";

/**
 * Audit entries whose every string field is drawn from `text` and every
 * number from `number`; contexts of up to five pairs, "__proto__" among
 * the possible keys.
 */
export function auditEntryArbitrary(
  text: fc.Arbitrary<string>,
  number: fc.Arbitrary<number>,
): fc.Arbitrary<AuditEntry> {
  return fc.record({
    time: number,
    requestId: text,
    protocol: text,
    projectId: text,
    principal: text,
    operation: text,
    keyId: text,
    sequence: text,
    outcome: text,
    latencyUs: number,
    context: fc.dictionary(fc.oneof(text, fc.constant("__proto__")), text, {
      maxKeys: 5,
      noNullPrototype: false,
    }),
  });
}
