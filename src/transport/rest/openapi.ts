import { type DescMethod, getOption } from "@bufbuild/protobuf";
import { cryptographic_operation, minimum_role, Role } from "../../../gen/kms/v1/rules_pb.js";
import { huaweiCodes } from "../../errors/huawei-codes.js";
import { optionOf } from "../../proto/options.js";
import { isRequired, type JsonSchema, SchemaCollector } from "./json-schema.js";
import type { RestRoute, RouteTable } from "./route-table.js";

type Json = { [key: string]: unknown };

// A path variable of a template: {field} or {field=*}.
const PATH_VARIABLE = /\{([a-z_][a-z0-9_]*)(?:=\*)?\}/g;

/** A route template as an OpenAPI path: {field=*} becomes {field}. */
export function openApiPath(template: string): string {
  return template.replace(PATH_VARIABLE, "{$1}");
}

/**
 * The OpenAPI 3.1 document of the REST gateway, built from the same routes
 * it serves (the proto's google.api.http annotations, read by RouteTable):
 * request and response bodies in Huawei's JSON, constraints from the
 * buf.validate rules, Huawei's error bodies, and the two ways to
 * authenticate. The descriptors protoc-gen-es embeds carry no comments, so
 * neither does the document.
 */
export function openApiDocument(routes: RouteTable): Json {
  const schemas = new SchemaCollector();
  const paths: Record<string, Record<string, Json>> = {};
  for (const route of routes.routes) {
    const path = openApiPath(route.template);
    paths[path] ??= {};
    paths[path][route.httpMethod.toLowerCase()] = operation(route, schemas);
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "kmsd: Huawei Cloud KMS data-encryption API",
      version: "v1.0",
      description:
        "Huawei Cloud KMS's REST paths as kmsd serves them, generated from kmsd's protobuf contract. " +
        "Every operation is also an RPC of the same name over gRPC and Connect.",
      license: { name: "Apache-2.0", identifier: "Apache-2.0" },
    },
    security: [{ XAuthToken: [] }, { HuaweiAkSk: [] }],
    paths,
    components: {
      schemas: { ...schemas.schemas, ...ERROR_SCHEMAS },
      responses: errorResponses(),
      headers: {
        "X-Request-Id": {
          description: "The request's id, also in kmsd's logs and audit trail.",
          schema: { type: "string", format: "uuid" },
        },
      },
      securitySchemes: {
        XAuthToken: {
          type: "apiKey",
          in: "header",
          name: "X-Auth-Token",
          description:
            "A token issued by `kmsd tokens create` (or the bootstrap credentials file).",
        },
        HuaweiAkSk: {
          type: "apiKey",
          in: "header",
          name: "Authorization",
          description:
            "Huawei's AK/SK request signature, as Huawei's SDKs send it: " +
            "`SDK-HMAC-SHA256 Access=<access key>, SignedHeaders=<headers>, Signature=<hex>`, " +
            "with the signing time in X-Sdk-Date. Credentials come from `kmsd credentials create`.",
        },
      },
    },
  };
}

function operation(route: RestRoute, schemas: SchemaCollector): Json {
  const { method } = route;
  const pathFields = [...route.template.matchAll(PATH_VARIABLE)].map((match) => match[1] ?? "");
  const parameters = pathFields.map((name) => {
    const field = method.input.fields.find((candidate) => candidate.name === name);
    if (field === undefined)
      throw new Error(`${route.template}: ${method.input.typeName} has no field ${name}`);
    return { name, in: "path", required: true, schema: schemas.fieldSchema(field, "request") };
  });
  const op: Json = {
    operationId: method.name,
    tags: [method.parent.typeName],
    summary: `${method.name} (${rpcPath(method)} over gRPC and Connect)`,
    "x-kmsd-minimum-role": getOption(method, minimum_role) === Role.USER ? "user" : "admin",
  };
  if (parameters.length > 0) op.parameters = parameters;
  // The gateway reads a JSON body only for body "*"; path fields come from the URL.
  if (route.body === "*") {
    const omit = new Set(pathFields);
    op.requestBody = {
      // An empty body is read as {}: it is only missing if it had a required field.
      required: method.input.fields.some((field) => !omit.has(field.name) && isRequired(field)),
      content: { "application/json": { schema: schemas.ref(method.input, "request", omit) } },
    };
  }
  const responses: Json = {
    "200": {
      description: "OK",
      headers: { "X-Request-Id": { $ref: "#/components/headers/X-Request-Id" } },
      content: { "application/json": { schema: schemas.ref(method.output, "response") } },
    },
  };
  for (const status of errorStatuses()) {
    // Only cryptographic operations are rate limited (APIGW.0308, the only 429).
    if (status === 429 && !optionOf(method, cryptographic_operation)) continue;
    responses[String(status)] = { $ref: `#/components/responses/Error${status}` };
  }
  op.responses = responses;
  return op;
}

function rpcPath(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

/** Huawei's two error bodies (see transport/rest/huawei-response.ts). */
const ERROR_SCHEMAS: Readonly<Record<string, JsonSchema>> = {
  HuaweiError: {
    description: "A service error, Huawei's nested body.",
    type: "object",
    required: ["error"],
    properties: {
      error: {
        type: "object",
        required: ["error_code", "error_msg"],
        properties: {
          error_code: { type: "string", examples: ["KMS.0207"] },
          error_msg: { type: "string" },
        },
      },
    },
  },
  HuaweiGatewayError: {
    description: "An API gateway error (authentication, unknown path), Huawei's flat body.",
    type: "object",
    required: ["error_code", "error_msg", "request_id"],
    properties: {
      error_code: { type: "string", examples: ["APIGW.0301"] },
      error_msg: { type: "string" },
      request_id: { type: "string" },
    },
  },
};

/** The HTTP statuses kmsd's error codes answer, ascending. */
function errorStatuses(): number[] {
  return [...new Set(Object.values(huaweiCodes).map((entry) => entry.httpStatus))].sort(
    (a, b) => a - b,
  );
}

/** One response per error status, listing the Huawei codes it carries (from the code table). */
function errorResponses(): Record<string, Json> {
  const responses: Record<string, Json> = {};
  for (const status of errorStatuses()) {
    const entries = Object.entries(huaweiCodes).filter(([, entry]) => entry.httpStatus === status);
    const bodies = [
      ...new Set(
        entries.map(([, entry]) => ("flatBody" in entry ? "HuaweiGatewayError" : "HuaweiError")),
      ),
    ].map((name) => ({ $ref: `#/components/schemas/${name}` }));
    responses[`Error${status}`] = {
      description: entries.map(([code, entry]) => `${code}: ${entry.meaning}`).join("\n"),
      headers: { "X-Request-Id": { $ref: "#/components/headers/X-Request-Id" } },
      content: {
        "application/json": { schema: bodies.length === 1 ? bodies[0] : { oneOf: bodies } },
      },
    };
  }
  return responses;
}

/** The document as served and as kept in docs/openapi.json. */
export function openApiJson(routes: RouteTable): string {
  return `${JSON.stringify(openApiDocument(routes), null, 2)}\n`;
}
