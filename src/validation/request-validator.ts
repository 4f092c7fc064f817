import type { DescField, DescMessage, Message } from "@bufbuild/protobuf";
import { createValidator, type Violation } from "@bufbuild/protovalidate";
import type { ConnectError } from "@connectrpc/connect";
import { huawei_error_code, max_total_bytes } from "../../gen/kms/v1/rules_pb.js";
import { isHuaweiErrorCode } from "../errors/huawei-codes.js";
import { kmsError } from "../errors/kms-error.js";
import { optionOf } from "../proto/options.js";
import { certainlyValidCheck } from "./certainly-valid.js";

/**
 * Checks a request against the rules declared in the proto: buf.validate's
 * standard and CEL rules, then kmsd's own (kms/v1/rules.proto). The first
 * broken rule becomes an error with the field's Huawei code; a missing
 * required field is always KMS.0204.
 */
export interface RequestValidator {
  /** Undefined when the request is valid. */
  check(schema: DescMessage, message: Message): ConnectError | undefined;
}

interface TotalBytesRule {
  readonly field: DescField;
  readonly localName: string;
  readonly maxBytes: number;
}

const regexCache = new Map<string, RegExp>();

/**
 * How a string.pattern rule matches, for protovalidate and the quick check
 * alike. The proto's patterns are plain RE2-compatible expressions; the
 * platform's RegExp matches them identically and far faster than the RE2
 * engine.
 */
export function matchRegex(pattern: string, input: string): boolean {
  let regex = regexCache.get(pattern);
  if (regex === undefined) {
    regex = new RegExp(pattern, "u");
    regexCache.set(pattern, regex);
  }
  return regex.test(input);
}

export function createRequestValidator(): RequestValidator {
  const validator = createValidator({ failFast: true, regexMatch: matchRegex });
  /** The quick proof of validity; null where the rules need protovalidate. */
  const quickCheckOf = perSchema((schema) => certainlyValidCheck(schema, matchRegex) ?? null);
  const totalBytesRulesOf = perSchema((schema): TotalBytesRule[] =>
    schema.fields.flatMap((field) => {
      const maxBytes = optionOf(field, max_total_bytes);
      return maxBytes > 0 ? [{ field, localName: field.localName, maxBytes }] : [];
    }),
  );

  /** protovalidate's verdict: the first broken rule as kmsd's error, or undefined. */
  function protovalidateRefusal(schema: DescMessage, message: Message): ConnectError | undefined {
    const result = validator.validate(schema, message);
    if (result.kind === "invalid") {
      const [first] = result.violations;
      if (first !== undefined) return violationError(first);
    }
    if (result.kind === "error") {
      // A rule that cannot be evaluated is a bug in the proto, not the caller's fault.
      return kmsError("KMS.0101", undefined, { cause: result.error });
    }
    return undefined;
  }

  return {
    check(schema, message) {
      const quick = quickCheckOf(schema);
      if (quick === null || !quick(message)) {
        const refusal = protovalidateRefusal(schema, message);
        if (refusal !== undefined) return refusal;
      }
      for (const rule of totalBytesRulesOf(schema)) {
        const value = (message as unknown as Record<string, unknown>)[rule.localName];
        if (isStringMap(value) && mapUtf8Bytes(value) > rule.maxBytes) {
          return fieldError(
            rule.field,
            `${rule.field.name} must take at most ${rule.maxBytes} bytes (keys and values, UTF-8)`,
          );
        }
      }
      return undefined;
    },
  };
}

/** `derive`, computed once per request type: what it reads is fixed when the code is generated. */
function perSchema<T>(derive: (schema: DescMessage) => T): (schema: DescMessage) => T {
  const values = new Map<DescMessage, T>();
  return (schema) => {
    let value = values.get(schema);
    // One lookup on the hot path: `has` only for a derived undefined.
    if (value === undefined && !values.has(schema)) {
      value = derive(schema);
      values.set(schema, value);
    }
    return value as T;
  };
}

/** The size kmsd limits a map<string, string> by: its keys and values in UTF-8. */
export function mapUtf8Bytes(map: Readonly<Record<string, string>>): number {
  let total = 0;
  for (const key in map) total += Buffer.byteLength(key) + Buffer.byteLength(map[key] ?? "");
  return total;
}

function isStringMap(value: unknown): value is Record<string, string> {
  return typeof value === "object" && value !== null;
}

function violationError(violation: Violation): ConnectError {
  const head = violation.field[0];
  const field = head?.kind === "field" ? head : undefined;
  const name = field?.name ?? "request";
  if (violation.ruleId === "required") return kmsError("KMS.0204", `${name} is required`);
  // The proto's own CEL rules word their messages whole, naming the field.
  if (violation.rule[0]?.kind === "field" && violation.rule[0].name === "cel") {
    return fieldError(field, violation.message);
  }
  const subject = violation.forKey ? `${name} key` : name;
  return fieldError(field, `${subject}: ${violation.message}`);
}

function fieldError(field: DescField | undefined, message: string): ConnectError {
  const code = field === undefined ? "" : optionOf(field, huawei_error_code);
  return kmsError(isHuaweiErrorCode(code) ? code : "KMS.0308", message);
}
