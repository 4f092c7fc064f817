import {
  type DescEnum,
  type DescField,
  type DescMessage,
  getOption,
  isFieldSet,
  ScalarType,
} from "@bufbuild/protobuf";
import {
  type FieldRules,
  field as fieldRulesOption,
  Ignore,
  type StringRules,
  StringRulesSchema,
} from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { huawei_error_code, max_total_bytes } from "../../../gen/kms/v1/rules_pb.js";

/** A JSON Schema (2020-12, as OpenAPI 3.1 uses it) as plain JSON. */
export type JsonSchema = { [keyword: string]: unknown };

/**
 * "request": what a client may send, constraints and required fields from
 * the proto's buf.validate rules. "response": what kmsd sends, where every
 * field is present (the gateway writes implicit fields too).
 */
export type SchemaRole = "request" | "response";

/**
 * JSON Schemas of messages in Huawei's JSON: proto field names and
 * protobuf's JSON mapping of each type, collected as named schemas
 * (components.schemas) as they are referenced.
 */
export class SchemaCollector {
  readonly schemas: Record<string, JsonSchema> = {};
  private readonly names = new Map<DescMessage, Map<SchemaRole, string>>();

  /** A $ref to the message's schema in this role, collecting it (and what it uses) on first use. */
  ref(message: DescMessage, role: SchemaRole, omit: ReadonlySet<string> = new Set()): JsonSchema {
    const wellKnown = WELL_KNOWN[message.typeName];
    if (wellKnown !== undefined) return wellKnown;
    let byRole = this.names.get(message);
    if (byRole === undefined) {
      byRole = new Map();
      this.names.set(message, byRole);
    }
    let name = byRole.get(role);
    if (name === undefined) {
      // A message used both ways gets two schemas; the response one keeps the plain name.
      name =
        role === "request" && this.schemas[message.typeName] !== undefined
          ? `${message.typeName}.Input`
          : message.typeName;
      byRole.set(role, name);
      this.schemas[name] = {}; // reserved first: a message may refer to itself
      this.schemas[name] = this.messageSchema(message, role, omit);
    }
    return { $ref: `#/components/schemas/${name}` };
  }

  /** The schema of one field, its rules included (also used for path parameters). */
  fieldSchema(field: DescField, role: SchemaRole): JsonSchema {
    const schema = this.typeSchema(field, role);
    return role === "request" ? withRules(schema, field) : schema;
  }

  private messageSchema(
    message: DescMessage,
    role: SchemaRole,
    omit: ReadonlySet<string>,
  ): JsonSchema {
    const properties: Record<string, JsonSchema> = {};
    const required: string[] = [];
    for (const field of message.fields) {
      if (omit.has(field.name)) continue;
      properties[field.name] = this.fieldSchema(field, role);
      // kmsd writes every field of a response (alwaysEmitImplicit) except
      // those with explicit presence (proto3 optional), sent only when set.
      const alwaysSent = role === "response" && !field.proto.proto3Optional;
      if (alwaysSent || isRequired(field)) required.push(field.name);
    }
    const schema: JsonSchema = { type: "object", properties };
    if (required.length > 0) schema.required = required;
    return schema;
  }

  private typeSchema(field: DescField, role: SchemaRole): JsonSchema {
    switch (field.fieldKind) {
      case "scalar":
        return scalarSchema(field.scalar);
      case "enum":
        return enumSchema(field.enum);
      case "message":
        return this.ref(field.message, role);
      case "list":
        return {
          type: "array",
          items:
            field.listKind === "scalar"
              ? scalarSchema(field.scalar)
              : field.listKind === "enum"
                ? enumSchema(field.enum)
                : this.ref(field.message, role),
        };
      case "map":
        return {
          type: "object",
          additionalProperties:
            field.mapKind === "scalar"
              ? scalarSchema(field.scalar)
              : field.mapKind === "enum"
                ? enumSchema(field.enum)
                : this.ref(field.message, role),
        };
    }
  }
}

/** Protobuf's JSON mapping of each scalar type. */
function scalarSchema(type: ScalarType): JsonSchema {
  switch (type) {
    case ScalarType.STRING:
      return { type: "string" };
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.BYTES:
      return { type: "string", contentEncoding: "base64" };
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return { type: "number" };
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return { type: "integer", format: "int32" };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { type: "integer", format: "uint32", minimum: 0 };
    default:
      // 64-bit integers are decimal strings in JSON (numbers are accepted too).
      return { type: ["string", "integer"], format: "int64" };
  }
}

function enumSchema(desc: DescEnum): JsonSchema {
  return { type: "string", enum: desc.values.map((value) => value.name) };
}

/** The well-known types with a JSON form of their own. */
const WELL_KNOWN: Readonly<Record<string, JsonSchema>> = {
  "google.protobuf.Timestamp": { type: "string", format: "date-time" },
  "google.protobuf.Duration": { type: "string", pattern: "^-?[0-9]+(\\.[0-9]+)?s$" },
  "google.protobuf.FieldMask": { type: "string" },
  "google.protobuf.Struct": { type: "object" },
  "google.protobuf.Value": {},
  "google.protobuf.ListValue": { type: "array" },
  "google.protobuf.Empty": { type: "object" },
  "google.protobuf.Any": { type: "object", properties: { "@type": { type: "string" } } },
  "google.protobuf.StringValue": { type: "string" },
  "google.protobuf.BoolValue": { type: "boolean" },
  "google.protobuf.BytesValue": { type: "string", contentEncoding: "base64" },
  "google.protobuf.DoubleValue": { type: "number" },
  "google.protobuf.FloatValue": { type: "number" },
  "google.protobuf.Int32Value": { type: "integer", format: "int32" },
  "google.protobuf.UInt32Value": { type: "integer", format: "uint32", minimum: 0 },
  "google.protobuf.Int64Value": { type: ["string", "integer"], format: "int64" },
  "google.protobuf.UInt64Value": { type: ["string", "integer"], format: "uint64" },
};

/** Whether the proto's rules require the field ((buf.validate.field).required). */
export function isRequired(field: DescField): boolean {
  return rulesOf(field).required;
}

function rulesOf(field: DescField): FieldRules {
  return getOption(field, fieldRulesOption);
}

/**
 * The field's buf.validate rules as JSON Schema keywords where one exists
 * (pattern, lengths, allowed values), the rest (CEL rules, byte limits) in
 * its description, and the Huawei code an invalid value answers as
 * x-huawei-error-code. A rule skipped for the empty value (ignore:
 * IGNORE_IF_ZERO_VALUE) admits "" besides.
 */
function withRules(schema: JsonSchema, field: DescField): JsonSchema {
  const rules = rulesOf(field);
  const notes: string[] = [];
  let constrained: JsonSchema = {};
  if (rules.type.case === "string") {
    constrained = stringKeywords(rules.type.value, notes);
  }
  if (rules.type.case === "map") {
    const keys = rules.type.value.keys?.type;
    if (keys?.case === "string") {
      const keyRules = stringKeywords(keys.value, notes);
      if (Object.keys(keyRules).length > 0) constrained.propertyNames = keyRules;
    }
  }
  // Required means set, and for a string, not empty.
  if (rules.required && schema.type === "string" && constrained.minLength === undefined) {
    constrained.minLength = 1;
  }
  for (const rule of rules.cel) notes.push(rule.message || rule.expression);
  const totalBytes = getOption(field, max_total_bytes);
  if (totalBytes > 0) notes.push(`keys and values together take at most ${totalBytes} UTF-8 bytes`);
  const out: JsonSchema = { ...schema };
  if (Object.keys(constrained).length > 0) {
    if (rules.ignore === Ignore.IF_ZERO_VALUE && schema.type === "string") {
      out.anyOf = [{ const: "" }, constrained];
    } else {
      Object.assign(out, constrained);
    }
  }
  if (notes.length > 0) {
    const text = notes.join("; ");
    out.description = `${text.charAt(0).toUpperCase()}${text.slice(1)}.`;
  }
  const code = getOption(field, huawei_error_code);
  if (code !== "") out["x-huawei-error-code"] = code;
  return out;
}

function stringKeywords(rules: StringRules, notes: string[]): JsonSchema {
  const out: JsonSchema = {};
  const set = (field: keyof typeof StringRulesSchema.field) =>
    isFieldSet(rules, StringRulesSchema.field[field]);
  if (set("len")) {
    out.minLength = Number(rules.len);
    out.maxLength = Number(rules.len);
  }
  if (set("minLen")) out.minLength = Number(rules.minLen);
  if (set("maxLen")) out.maxLength = Number(rules.maxLen);
  if (set("pattern")) out.pattern = rules.pattern;
  if (rules.in.length > 0) out.enum = [...rules.in];
  if (set("maxBytes")) notes.push(`at most ${rules.maxBytes} bytes in UTF-8`);
  if (set("minBytes")) notes.push(`at least ${rules.minBytes} bytes in UTF-8`);
  return out;
}
