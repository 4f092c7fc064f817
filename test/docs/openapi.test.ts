import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KmsService } from "../../gen/kms/v1/kms_pb.js";
import { openApiJson, openApiPath } from "../../src/transport/rest/openapi.js";
import { RouteTable } from "../../src/transport/rest/route-table.js";
import { createKey, type RunningKmsd, startKmsd, testToken } from "../support/kmsd.js";

type Json = { [key: string]: unknown };

const routes = new RouteTable([KmsService]);

/** Follows a local $ref (#/components/...). */
function resolve(document: Json, schema: Json): Json {
  const ref = schema.$ref;
  if (typeof ref !== "string") return schema;
  let node: unknown = document;
  for (const part of ref.slice(2).split("/")) node = (node as Json)[part];
  if (node === undefined) throw new Error(`unresolved ${ref}`);
  return resolve(document, node as Json);
}

/**
 * Checks a value against the subset of JSON Schema the document uses
 * (type, properties, required, items, additionalProperties, enum, const,
 * pattern, lengths, anyOf, oneOf, $ref); returns the paths that fail.
 */
function violations(document: Json, schema: Json, value: unknown, at = "$"): string[] {
  const s = resolve(document, schema);
  const out: string[] = [];
  const types = s.type === undefined ? [] : ([] as unknown[]).concat(s.type);
  if (types.length > 0) {
    const actual = Array.isArray(value)
      ? "array"
      : value === null
        ? "null"
        : Number.isInteger(value)
          ? "integer"
          : typeof value;
    const fits = types.includes(actual) || (actual === "integer" && types.includes("number"));
    if (!fits) return [`${at}: ${actual} is not ${types.join("|")}`];
  }
  if (s.const !== undefined && value !== s.const) out.push(`${at}: not ${JSON.stringify(s.const)}`);
  if (Array.isArray(s.enum) && !s.enum.includes(value)) out.push(`${at}: not in enum`);
  if (typeof value === "string") {
    if (typeof s.pattern === "string" && !new RegExp(s.pattern, "u").test(value)) {
      out.push(`${at}: does not match ${s.pattern}`);
    }
    if (typeof s.minLength === "number" && value.length < s.minLength) out.push(`${at}: too short`);
    if (typeof s.maxLength === "number" && value.length > s.maxLength) out.push(`${at}: too long`);
  }
  for (const keyword of ["anyOf", "oneOf"] as const) {
    const options = s[keyword];
    if (!Array.isArray(options)) continue;
    const passing = options.filter(
      (option) => violations(document, option as Json, value, at).length === 0,
    ).length;
    if (keyword === "anyOf" ? passing === 0 : passing !== 1) out.push(`${at}: fails ${keyword}`);
  }
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const object = value as Json;
    for (const name of (s.required as string[] | undefined) ?? []) {
      if (!(name in object)) out.push(`${at}.${name}: required`);
    }
    const properties = (s.properties ?? {}) as Record<string, Json>;
    for (const [name, item] of Object.entries(object)) {
      const property = properties[name] ?? (s.additionalProperties as Json | undefined);
      if (property === undefined) {
        if (s.properties !== undefined) out.push(`${at}.${name}: not in the schema`);
        continue;
      }
      out.push(...violations(document, property, item, `${at}.${name}`));
    }
  }
  if (Array.isArray(value) && s.items !== undefined) {
    value.forEach((item, index) => {
      out.push(...violations(document, s.items as Json, item, `${at}[${index}]`));
    });
  }
  return out;
}

describe("the OpenAPI document", () => {
  let kmsd: RunningKmsd;
  let served: string;
  let document: Json;
  let paths: Record<string, Record<string, Json>>;

  beforeAll(async () => {
    kmsd = await startKmsd();
    const response = await fetch(`${kmsd.url}/openapi.json`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/json");
    served = await response.text();
    document = JSON.parse(served) as Json;
    paths = document.paths as Record<string, Record<string, Json>>;
  });
  afterAll(() => kmsd.stop());

  it("is OpenAPI 3.1, served at /openapi.json exactly as kept in docs/openapi.json", async () => {
    expect(document.openapi).toBe("3.1.0");
    expect(served).toBe(openApiJson(routes));
    expect(await readFile("docs/openapi.json", "utf8")).toBe(served);
  });

  it("has exactly the gateway's routes: each path and method, nothing else", () => {
    const documented = Object.entries(paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`),
    );
    const gateway = routes.routes.map(
      (route) => `${route.httpMethod} ${openApiPath(route.template)}`,
    );
    expect(documented.sort()).toEqual(gateway.sort());
    expect(gateway.length).toBe(KmsService.methods.length);
  });

  it("documents only paths the running gateway serves", async () => {
    for (const [path, methods] of Object.entries(paths)) {
      for (const method of Object.keys(methods)) {
        const url = `${kmsd.url}${path.replace("{project_id}", "pdoc")}`;
        const response = await fetch(url, { method: method.toUpperCase(), body: "{}" });
        // Routed, so refused for want of a credential, not as an unknown API.
        expect(response.status, path).toBe(401);
        expect(await response.json()).toMatchObject({ error_code: "APIGW.0301" });
      }
    }
    const unknown = await fetch(`${kmsd.url}/v1.0/pdoc/kms/not-documented`, { method: "POST" });
    expect(await unknown.json()).toMatchObject({ error_code: "APIGW.0101" });
  });

  it("names each operation after its RPC, with its path parameters and every $ref resolving", () => {
    const text = JSON.stringify(document);
    for (const match of text.matchAll(/"\$ref":"([^"]+)"/g)) {
      expect(() => resolve(document, { $ref: match[1] }), match[1]).not.toThrow();
    }
    for (const route of routes.routes) {
      const operation = paths[openApiPath(route.template)]?.[route.httpMethod.toLowerCase()];
      expect(operation?.operationId).toBe(route.method.name);
      expect(operation?.parameters).toEqual([
        expect.objectContaining({ name: "project_id", in: "path", required: true }),
      ]);
      const responses = operation?.responses as Record<string, Json>;
      for (const status of ["200", "400", "401", "403", "404", "500"]) {
        expect(responses[status], status).toBeDefined();
      }
    }
    const schemes = (document.components as Json).securitySchemes as Record<string, Json>;
    expect(schemes.XAuthToken).toMatchObject({
      type: "apiKey",
      in: "header",
      name: "X-Auth-Token",
    });
    expect(schemes.HuaweiAkSk).toMatchObject({
      type: "apiKey",
      in: "header",
      name: "Authorization",
    });
  });

  it("describes the bodies kmsd takes and answers, errors included", async () => {
    const keyId = await createKey(kmsd.config, "pdoc", "doc");
    const token = await testToken(kmsd.config, "pdoc");
    const call = async (name: string, body: Json) => {
      const path = `/v1.0/{project_id}/kms/${name}`;
      const operation = paths[path]?.post as Json;
      const requestSchema = ((operation.requestBody as Json).content as Json)[
        "application/json"
      ] as Json;
      const response = await fetch(`${kmsd.url}${path.replace("{project_id}", "pdoc")}`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-auth-token": token },
        body: JSON.stringify(body),
      });
      const answer = (await response.json()) as Json;
      const responses = operation.responses as Record<string, Json>;
      const described = resolve(document, responses[String(response.status)] ?? {});
      const responseSchema = ((described.content as Json)["application/json"] as Json)
        .schema as Json;
      return {
        status: response.status,
        answer,
        requestViolations: violations(document, requestSchema.schema as Json, body),
        responseViolations: violations(document, responseSchema, answer),
      };
    };

    const encrypted = await call("encrypt-data", {
      key_id: keyId,
      plain_text: "documented",
      encryption_context: { a: "b" },
    });
    expect(encrypted).toMatchObject({ status: 200, requestViolations: [], responseViolations: [] });
    const decrypted = await call("decrypt-data", {
      cipher_text: encrypted.answer.cipher_text as string,
      encryption_context: { a: "b" },
    });
    expect(decrypted).toMatchObject({ status: 200, requestViolations: [], responseViolations: [] });
    expect(await call("describe-key", { key_id: keyId })).toMatchObject({
      status: 200,
      responseViolations: [],
    });
    expect(await call("list-keys", { limit: "10" })).toMatchObject({
      status: 200,
      requestViolations: [],
      responseViolations: [],
    });

    // What the schema refuses, kmsd refuses, with the code the schema names.
    const keyIdSchema = resolve(
      document,
      ((document.components as Json).schemas as Record<string, Json>)[
        "kms.v1.EncryptDataRequest"
      ] ?? {},
    );
    const refused = await call("encrypt-data", { key_id: "not-a-key-id", plain_text: "x" });
    expect(refused.requestViolations).toEqual([
      "$.key_id: does not match ^[0-9a-z]{8}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{12}$",
    ]);
    expect(refused.status).toBe(400);
    expect(refused.responseViolations).toEqual([]);
    expect((refused.answer.error as Json).error_code).toBe(
      ((keyIdSchema.properties as Record<string, Json>).key_id as Json)["x-huawei-error-code"],
    );
    const missing = await call("encrypt-data", { key_id: keyId });
    expect(missing.requestViolations).toEqual(["$.plain_text: required"]);
    expect(missing.status).toBe(400);
  });
});
