import {
  type DescField,
  type DescMessage,
  getOption,
  hasOption,
  isFieldSet,
  type Message,
  ScalarType,
} from "@bufbuild/protobuf";
import { FeatureSet_FieldPresence } from "@bufbuild/protobuf/wkt";
import {
  type FieldRules,
  field as fieldRulesExtension,
  Ignore,
  type MapRules,
  message as messageRulesExtension,
  oneof as oneofRulesExtension,
  type StringRules,
  StringRulesSchema,
} from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";

/** Says whether a message passes its rules for certain; false means "ask protovalidate". */
export type ValidityCheck = (message: Message) => boolean;

/** Matches a string.pattern: the same function protovalidate is configured with. */
export type PatternMatch = (pattern: string, input: string) => boolean;

type FieldCheck = (message: Record<string, unknown>) => boolean;

function stringRule(localName: string): DescField {
  const found = StringRulesSchema.fields.find((f) => f.localName === localName);
  if (found === undefined) throw new Error(`StringRules has no field ${localName}`);
  return found;
}

const LEN = stringRule("len");
const MIN_LEN = stringRule("minLen");
const MAX_LEN = stringRule("maxLen");
const MAX_BYTES = stringRule("maxBytes");
const PATTERN = stringRule("pattern");
/** The StringRules a check understands; any other set field leaves the schema to protovalidate. */
const KNOWN_STRING_RULES: ReadonlySet<DescField> = new Set([
  LEN,
  MIN_LEN,
  MAX_LEN,
  MAX_BYTES,
  PATTERN,
  stringRule("in"),
]);

/**
 * A check that proves a request valid without protovalidate's general
 * machinery (reflection, rule paths, cursors): 0.6 against 2.3 µs for an
 * EncryptData request (docs/benchmarks.md), on every request. It understands a
 * small subset of the rules, the one the hot requests use: `required`,
 * `ignore`, and on strings of implicit presence `len`, `min_len`,
 * `max_len`, `max_bytes`, `pattern` and `in`; on map<string, scalar>,
 * `keys.string.min_len`. A schema with any other rule (CEL, message or
 * oneof rules, nested messages protovalidate would descend into) gets no
 * check: undefined. The check only ever answers "valid for certain" or
 * "not sure", so a rule it reads too strictly costs speed, never
 * correctness: protovalidate still judges, and words, every refusal.
 */
export function certainlyValidCheck(
  schema: DescMessage,
  matches: PatternMatch,
): ValidityCheck | undefined {
  if (hasOption(schema, messageRulesExtension)) return undefined;
  if (schema.oneofs.some((oneof) => hasOption(oneof, oneofRulesExtension))) return undefined;
  const checks: FieldCheck[] = [];
  for (const field of schema.fields) {
    const check = fieldCheck(field, matches);
    if (check === undefined) return undefined;
    if (check !== NO_CHECK) checks.push(check);
  }
  return (message) => {
    const fields = message as unknown as Record<string, unknown>;
    for (const check of checks) if (!check(fields)) return false;
    return true;
  };
}

const NO_CHECK: FieldCheck = () => true;

function fieldCheck(field: DescField, matches: PatternMatch): FieldCheck | undefined {
  // protovalidate descends into message fields and checks their own rules.
  if (field.message !== undefined) return undefined;
  if (!hasOption(field, fieldRulesExtension)) return NO_CHECK;
  const rules = getOption(field, fieldRulesExtension);
  if (rules.cel.length > 0 || hasUnknown(rules)) return undefined;
  if (rules.ignore === Ignore.ALWAYS) return NO_CHECK;
  if (rules.ignore !== Ignore.UNSPECIFIED && rules.ignore !== Ignore.IF_ZERO_VALUE) {
    return undefined;
  }
  switch (rules.type.case) {
    case undefined:
      return rules.required ? stringFieldCheck(field, rules, ANY_STRING) : NO_CHECK;
    case "string": {
      const valid = stringCheck(rules.type.value, matches);
      return valid === undefined ? undefined : stringFieldCheck(field, rules, valid);
    }
    case "map":
      return mapCheck(field, rules, rules.type.value, matches);
    default:
      return undefined;
  }
}

const ANY_STRING = (): boolean => true;

/**
 * A string field's rules as protovalidate applies them to a field of
 * implicit presence: `required` refuses "", IF_ZERO_VALUE skips the rest
 * for "", and `valid` judges every other value.
 */
function stringFieldCheck(
  field: DescField,
  rules: FieldRules,
  valid: (value: string) => boolean,
): FieldCheck | undefined {
  if (field.fieldKind !== "scalar" || field.scalar !== ScalarType.STRING) return undefined;
  // Explicit presence changes when rules apply: left to protovalidate.
  if (field.presence !== FeatureSet_FieldPresence.IMPLICIT) return undefined;
  const name = field.localName;
  const { required } = rules;
  const skipEmpty = rules.ignore === Ignore.IF_ZERO_VALUE;
  return (message) => {
    const value = message[name];
    if (typeof value !== "string") return false;
    if (value === "") {
      if (required) return false;
      if (skipEmpty) return true;
    }
    return valid(value);
  };
}

function stringCheck(
  rules: StringRules,
  matches: PatternMatch,
): ((value: string) => boolean) | undefined {
  if (hasUnknown(rules)) return undefined;
  for (const ruleField of StringRulesSchema.fields) {
    if (isFieldSet(rules, ruleField) && !KNOWN_STRING_RULES.has(ruleField)) {
      return undefined;
    }
  }
  const len = isFieldSet(rules, LEN) ? Number(rules.len) : undefined;
  const minLen = isFieldSet(rules, MIN_LEN) ? Number(rules.minLen) : undefined;
  const maxLen = isFieldSet(rules, MAX_LEN) ? Number(rules.maxLen) : undefined;
  const maxBytes = isFieldSet(rules, MAX_BYTES) ? Number(rules.maxBytes) : undefined;
  const pattern = isFieldSet(rules, PATTERN) ? rules.pattern : undefined;
  const allowed = rules.in.length > 0 ? new Set(rules.in) : undefined;
  const countsCodePoints = len !== undefined || minLen !== undefined || maxLen !== undefined;
  return (value) => {
    if (allowed !== undefined && !allowed.has(value)) return false;
    if (maxBytes !== undefined || countsCodePoints) {
      const bytes = Buffer.byteLength(value);
      if (maxBytes !== undefined && bytes > maxBytes) return false;
      if (countsCodePoints) {
        // All ASCII (one byte per UTF-16 unit): code points are units.
        const codePoints = bytes === value.length ? value.length : codePointCount(value);
        if (len !== undefined && codePoints !== len) return false;
        if (minLen !== undefined && codePoints < minLen) return false;
        if (maxLen !== undefined && codePoints > maxLen) return false;
      }
    }
    return pattern === undefined || matches(pattern, value);
  };
}

function mapCheck(
  field: DescField,
  rules: FieldRules,
  map: MapRules,
  matches: PatternMatch,
): FieldCheck | undefined {
  if (field.fieldKind !== "map" || field.mapKey !== ScalarType.STRING) return undefined;
  if (field.mapKind === "message" || rules.required || hasUnknown(map)) return undefined;
  if (map.minPairs !== BigInt(0) || map.maxPairs !== BigInt(0) || map.values !== undefined) {
    return undefined;
  }
  const keyRules = map.keys;
  if (keyRules === undefined) return NO_CHECK;
  if (keyRules.required || keyRules.cel.length > 0 || hasUnknown(keyRules)) return undefined;
  if (keyRules.ignore !== Ignore.UNSPECIFIED || keyRules.type.case !== "string") return undefined;
  const validKey = stringCheck(keyRules.type.value, matches);
  if (validKey === undefined) return undefined;
  const name = field.localName;
  return (message) => {
    const value = message[name];
    if (typeof value !== "object" || value === null) return false;
    for (const key in value) if (!validKey(key)) return false;
    return true;
  };
}

function codePointCount(value: string): number {
  let count = 0;
  for (const _ of value) count++;
  return count;
}

/** Rules this build of protovalidate does not know (predefined rule extensions among them). */
function hasUnknown(rules: { readonly $unknown?: readonly unknown[] }): boolean {
  return (rules.$unknown?.length ?? 0) > 0;
}
