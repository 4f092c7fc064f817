/**
 * kmsd's SDK-HMAC-SHA256 verifier against exactly what Huawei's Node SDK
 * puts on the wire: the SDK's client sends requests with awkward paths,
 * queries, headers and bodies to a server that only records them, and
 * kmsd's RequestAuthenticator must accept each one as it arrived, and
 * refuse it once any signed part is changed.
 */
import { createHash } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AccessResolver, ResolvedCredential } from "../../src/auth/access-resolver.js";
import {
  type AuthenticationInput,
  RequestAuthenticator,
} from "../../src/auth/request-authenticator.js";
import { headerOrdersDiffer, parseSdkDate } from "../../src/auth/sdk-hmac-sha256.js";
import { huaweiCodeOf } from "../../src/errors/kms-error.js";
import { CredentialState } from "../../src/keystore/access-types.js";
import { sdkClient, type TestCredential } from "../support/signing.js";

const credential: TestCredential = {
  access_key: "KMSDCONFORMANCE00001",
  secret_key: "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCd",
  project_id: "proj_1-x",
  role: "admin",
};

/** A request as it reached the server. */
interface Received {
  readonly method: string;
  readonly target: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

let server: http.Server;
let baseUrl: string;
const received: Received[] = [];

beforeAll(async () => {
  server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      received.push({
        method: request.method ?? "",
        target: request.url ?? "",
        headers: request.headers,
        body: Buffer.concat(chunks),
      });
      response.writeHead(200, { "content-type": "application/json" });
      response.end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

/** A resolver that knows one credential. */
const resolver = {
  async credential(accessKey: string): Promise<ResolvedCredential | undefined> {
    if (accessKey !== credential.access_key) return undefined;
    return {
      secret: credential.secret_key,
      record: {
        accessKey,
        projectId: credential.project_id,
        role: "admin",
        wrappedSecret: new Uint8Array(),
        rootKeyId: "test",
        state: CredentialState.Enabled,
        createdAt: 0,
        description: "",
      },
    };
  },
  async token() {
    return undefined;
  },
} as unknown as AccessResolver;

const authenticator = new RequestAuthenticator(resolver);

function inputOf(request: Received): AuthenticationInput {
  return {
    httpMethod: request.method,
    rawTarget: request.target,
    header: (name) => {
      const value = request.headers[name];
      return Array.isArray(value) ? value.join(", ") : value;
    },
    bodyHash: () => createHash("sha256").update(request.body).digest("hex"),
  };
}

/** The Huawei code authentication answers, or "ok". */
async function verdict(input: AuthenticationInput): Promise<string> {
  try {
    const principal = await authenticator.authenticate(input);
    expect(principal).toEqual({
      kind: "access-key",
      id: credential.access_key,
      projectId: credential.project_id,
      role: "admin",
    });
    return "ok";
  } catch (error) {
    if (error instanceof ConnectError) return huaweiCodeOf(error);
    throw error;
  }
}

interface SdkCase {
  readonly name: string;
  readonly method: string;
  readonly url: string;
  readonly queryParams?: Record<string, string | string[]>;
  readonly headers?: Record<string, string>;
  readonly data?: Record<string, unknown>;
}

const cases: SdkCase[] = [
  {
    name: "a JSON POST",
    method: "POST",
    url: "/v1.0/{project_id}/kms/encrypt-data",
    data: { key_id: "0d0466b0-e727-4d9c-b35d-f84bb474a37f", plain_text: "12345678" },
  },
  {
    name: "a body with non-ASCII text and escapes",
    method: "POST",
    url: "/v1.0/{project_id}/kms/encrypt-data",
    data: { plain_text: 'grüße "😀" \\ \n', encryption_context: { ä: "ö" } },
  },
  {
    name: "a GET without a body",
    method: "GET",
    url: "/v1.0/{project_id}/kms/user-instances",
  },
  {
    name: "a query with reserved, repeated, empty and non-ASCII values",
    method: "GET",
    url: "/v1.0/{project_id}/kms/list-keys",
    queryParams: {
      limit: "10",
      "a b": "c+d&e=f",
      marker: ["z", "a", "m"],
      empty: "",
      "star*": "(x)!'~",
      ü: "😀",
    },
  },
  {
    name: "path segments that need escaping",
    method: "POST",
    url: "/v1.0/{project_id}/kms/a~b.c_d-e/(x)",
    data: {},
  },
  {
    name: "extra headers, whose names sort differently by code unit and by locale",
    method: "POST",
    url: "/v1.0/{project_id}/kms/list-keys",
    headers: { "X-Custom_Name": "v", "X-Custom-Name": "w", x1: "2", Xa: "3", "X-Spaced": "a  b" },
    data: {},
  },
];

describe("the verifier accepts what Huawei's Node SDK sends", () => {
  it.each(cases)("$name", async (sdkCase) => {
    received.length = 0;
    const client = sdkClient(baseUrl, credential);
    await client.sendRequest({
      method: sdkCase.method,
      url: sdkCase.url,
      contentType: "application/json",
      queryParams: sdkCase.queryParams ?? {},
      pathParams: {},
      headers: { ...sdkCase.headers },
      ...(sdkCase.data === undefined ? {} : { data: sdkCase.data }),
    });
    expect(received).toHaveLength(1);
    const request = received[0] as Received;
    expect(request.headers.authorization).toMatch(/^SDK-HMAC-SHA256 Access=/);
    expect(await verdict(inputOf(request))).toBe("ok");

    // Any signed part changed: refused.
    const input = inputOf(request);
    const spoiled: [string, AuthenticationInput][] = [
      ["method", { ...input, httpMethod: request.method === "GET" ? "POST" : "GET" }],
      ["path", { ...input, rawTarget: request.target.replace("/kms/", "/kms2/") }],
      [
        "query",
        { ...input, rawTarget: `${request.target}${request.target.includes("?") ? "&" : "?"}x=1` },
      ],
      ["body", { ...input, bodyHash: () => createHash("sha256").update("{}x").digest("hex") }],
      [
        "X-Project-Id",
        { ...input, header: (name) => (name === "x-project-id" ? "other" : input.header(name)) },
      ],
      [
        "host",
        { ...input, header: (name) => (name === "host" ? "localhost:1" : input.header(name)) },
      ],
    ];
    for (const [what, changed] of spoiled) {
      expect(await verdict(changed), what).toBe("APIGW.0301");
    }
  });

  it("the header-order case really exercises the Node SDK's own order", () => {
    expect(headerOrdersDiffer(["x-custom_name", "x-custom-name"])).toBe(true);
    expect(headerOrdersDiffer(["content-type", "host", "x-project-id", "x-sdk-date"])).toBe(false);
  });
});

describe("X-Sdk-Date", () => {
  it.each([
    ["20260131T235959Z", Date.UTC(2026, 0, 31, 23, 59, 59)],
    ["20240229T000000Z", Date.UTC(2024, 1, 29)],
  ])("%s is read as UTC", (value, expected) => {
    expect(parseSdkDate(value)).toBe(expected);
  });

  it.each([
    "20250229T000000Z",
    "20261301T000000Z",
    "20260001T000000Z",
    "20260132T000000Z",
    "20260101T240000Z",
    "20260101T006000Z",
    "20260101T000060Z",
    "20260101T000000",
    "2026-01-01T00:00:00Z",
    "20260101T000000+0000",
    "",
  ])("%j is refused", (value) => {
    expect(parseSdkDate(value)).toBeUndefined();
  });
});
