import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { auditText, entryFields } from "../../src/audit/record-text.js";
import type { AuditEntry } from "../../src/keystore/audit-types.js";
import { NO_CONTEXT } from "../../src/keystore/audit-types.js";
import { auditEntryArbitrary } from "./entry-arbitrary.js";

/** What the record text must equal: JSON.stringify of the entry's fields, in their order. */
function reference(entry: AuditEntry): string {
  return JSON.stringify(entryFields(entry));
}

// Any UTF-16 code units: quotes, backslashes, controls, lone surrogates, pairs.
const codeUnits = fc
  .array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 12 })
  .map((units) => String.fromCharCode(...units));
const text = fc.oneof(fc.string(), fc.string({ unit: "grapheme" }), codeUnits);
const number = fc.oneof(fc.integer(), fc.double(), fc.constant(-0));

describe("auditText", () => {
  it("is byte for byte JSON.stringify of the entry's fields, whatever they hold", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          auditEntryArbitrary(text, number),
          auditEntryArbitrary(text, number).map((entry) => ({ ...entry, context: NO_CONTEXT })),
        ),
        (entry) => {
          expect(auditText(entry)).toBe(reference(entry));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("writes the common entry as JSON that parses back to it", () => {
    const entry: AuditEntry = {
      time: 1_790_000_000_000,
      requestId: "0e8e8a2c-0c1a-4a39-9a5b-2b0f6a1d2f44",
      protocol: "rest",
      projectId: "p",
      principal: 'token:"quoted"\\',
      operation: "EncryptData",
      keyId: "k",
      sequence: "",
      outcome: "OK",
      latencyUs: 120,
      context: { purpose: "h\u0001" },
    };
    expect(JSON.parse(auditText(entry))).toEqual(entry);
    expect(auditText(entry)).toBe(reference(entry));
  });
});
